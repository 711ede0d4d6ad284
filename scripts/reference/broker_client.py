#!/usr/bin/env python3
"""Reference clients of the brokers' own ecosystems calling a wirebench
responder through a real broker, written from docs/protocol.md section 17
alone.

Usage:
    broker_client.py nats HOST:PORT       nats-py
    broker_client.py rabbitmq HOST:PORT   pika
    broker_client.py redis HOST:PORT      redis (redis-py)
    broker_client.py mqtt HOST:PORT       paho-mqtt (MQTT 5)

HOST:PORT is the broker; a `wirebench serve --transport BROKER --listen
HOST:PORT` responder must be subscribed already. Every call is json
(section 12.3): Multiply, its overflow, Echo, Digest (checked against
checksum.py), and the refusals a responder owes (unknown format, an
undecodable body, a call id that is not a number), plus the raw floor.
Prints one line per check ("ok" or "FAIL") and exits non-zero if any
check failed.
"""

import asyncio
import base64
import json
import os
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checksum import digest as reference_digest  # noqa: E402

MULTIPLY, ECHO, DIGEST = 1, 2, 3
JSON = 1
OK, INVALID_ARGUMENT, OUT_OF_RANGE, UNIMPLEMENTED = 0, 3, 11, 12
DEADLINE = 10.0  # seconds

M = (1 << 64) - 1
KINDS = ["unknown", "click", "view", "purchase", "refund"]
RECORDS = [
    dict(id=7, user_id=42, timestamp_micros=-5, name="Ada Lovelace", email="ada@example.com", kind=3,
         score=1.5, weight=0.25, active=True, tags=["a", "bc"], attributes=[("k", "v")],
         location=(1.0, 2.0, "München"), fingerprint=bytes([1, 2, 3])),
    dict(id=8, user_id=4_000_000_000, timestamp_micros=1781042494453016, name="Zoë", email="z@example.io", kind=0,
         score=-0.0, weight=0.5, active=False, tags=[], attributes=[], location=None, fingerprint=b""),
]

failures = 0


def check(broker, what, ok, detail=""):
    global failures
    if not ok:
        failures += 1
    print(f"{'ok  ' if ok else 'FAIL'} {broker:8} {what}{': ' + detail if detail else ''}", flush=True)


def json_record(r):
    return {
        "id": r["id"], "user_id": r["user_id"], "timestamp_micros": r["timestamp_micros"], "name": r["name"],
        "email": r["email"], "kind": KINDS[r["kind"]], "score": r["score"], "weight": r["weight"],
        "active": r["active"], "tags": r["tags"],
        "attributes": [{"key": k, "value": v} for k, v in r["attributes"]],
        "location": None if r["location"] is None else dict(zip(("latitude", "longitude", "city"), r["location"])),
        "fingerprint": base64.b64encode(r["fingerprint"]).decode(),
    }


def checksum_records(records):
    # checksum.py folds timestamp_micros as two's complement.
    return reference_digest([dict(r, timestamp_micros=r["timestamp_micros"] & M) for r in records])


def body(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


PAYLOAD = os.urandom(3000)
# (what, call header, format header, request body, expected status, check of the reply body)
CALLS = [
    ("multiply", "1", "1", body({"a": 1234567891, "b": -987654}), OK,
     lambda b: json.loads(b) == {"product": -1219325915817714}),
    ("multiply overflow is OUT_OF_RANGE", "1", "1", body({"a": 1 << 62, "b": 4}), OUT_OF_RANGE, None),
    ("echo 3000 bytes", "2", "1", body({"payload": base64.b64encode(PAYLOAD).decode()}), OK,
     lambda b: base64.b64decode(json.loads(b)["payload"]) == PAYLOAD),
    ("digest of 2 records = checksum.py", "3", "1", body({"records": [json_record(r) for r in RECORDS]}), OK,
     lambda b: (lambda d: (d["records"], d["checksum"]) == checksum_records(RECORDS))(json.loads(b))),
    ("unknown format id is UNIMPLEMENTED", "1", "250", body({"a": 1, "b": 2}), UNIMPLEMENTED, None),
    ("undecodable body is INVALID_ARGUMENT", "1", "1", b"{{{", INVALID_ARGUMENT, None),
    ("call id not a number is INVALID_ARGUMENT", "one", "1", body({"a": 1, "b": 2}), INVALID_ARGUMENT, None),
]
RAW_REPLY = 1000


def verify(broker, what, status, expected, reply, check_body):
    if status != expected:
        check(broker, what, False, f"status {status}, expected {expected} ({reply[:80]!r})")
    elif check_body is not None and not check_body(reply):
        check(broker, what, False, f"reply {reply[:120]!r}")
    else:
        check(broker, what, True, "" if expected == OK else reply.decode(errors="replace")[:60])


def raw_request():
    return struct.pack(">I", RAW_REPLY) + b"\x5a" * 60


def verify_raw(broker, reply):
    check(broker, "raw floor: reply of the length asked", reply == b"\xa5" * RAW_REPLY, f"{len(reply)} bytes")


# --- nats (nats-py) ---------------------------------------------------------------------------------


def run_nats(address):
    import nats

    async def main():
        nc = await nats.connect(f"nats://{address}", allow_reconnect=False)
        try:
            for what, call, fmt, request, expected, check_body in CALLS:
                msg = await nc.request("wirebench.requests", request, timeout=DEADLINE,
                                       headers={"Wirebench-Call": call, "Wirebench-Format": fmt})
                status = int((msg.headers or {}).get("Wirebench-Status", "-1"))
                verify("nats", what, status, expected, msg.data, check_body)
            msg = await nc.request("wirebench.raw", raw_request(), timeout=DEADLINE)
            verify_raw("nats", msg.data)
        finally:
            await nc.close()

    asyncio.run(main())


# --- rabbitmq (pika) --------------------------------------------------------------------------------


def run_rabbitmq(address):
    import pika

    host, port = address.rsplit(":", 1)
    params = pika.ConnectionParameters(host=host, port=int(port), credentials=pika.PlainCredentials("guest", "guest"))
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        for queue in ("wirebench.requests", "wirebench.raw"):
            ch.queue_declare(queue=queue, durable=False, exclusive=False, auto_delete=False)
        replies = {}

        def on_reply(_ch, _method, props, data):
            replies[props.correlation_id] = (props, data)

        # Direct reply-to: the consumer first, then the publishes.
        ch.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)

        def call(queue, correlation, request, headers):
            props = pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id=correlation,
                                         headers=headers)
            ch.basic_publish(exchange="", routing_key=queue, properties=props, body=request)
            until = time.monotonic() + DEADLINE
            while correlation not in replies and time.monotonic() < until:
                conn.process_data_events(time_limit=0.1)
            return replies.pop(correlation, (None, None))

        for i, (what, callid, fmt, request, expected, check_body) in enumerate(CALLS):
            # Integers as the Rust client sends them; a call id that is not
            # a number goes as a string, which the document also allows.
            headers = {"wirebench-call": int(callid) if callid.isdigit() else callid, "wirebench-format": int(fmt)}
            props, data = call("wirebench.requests", str(100 + i), request, headers)
            if props is None:
                check("rabbitmq", what, False, "no reply")
                continue
            status = (props.headers or {}).get("wirebench-status", -1)
            verify("rabbitmq", what, int(status), expected, data, check_body)
        props, data = call("wirebench.raw", "999", raw_request(), None)
        verify_raw("rabbitmq", data or b"")
    finally:
        conn.close()


# --- redis (redis-py) -------------------------------------------------------------------------------


def run_redis(address):
    import redis

    host, port = address.rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port))
    reply_stream = f"wirebench:replies:py-{os.getpid()}"
    last = "0"

    def call(stream, request_id, fields):
        nonlocal last
        r.xadd(stream, dict(fields, id=request_id, reply=reply_stream))
        while True:
            got = r.xread({reply_stream: last}, count=16, block=int(DEADLINE * 1000))
            if not got:
                return None
            for entry_id, entry in got[0][1]:
                last = entry_id
                r.xdel(reply_stream, entry_id)
                if entry.get(b"id") == request_id.encode():
                    return entry

    try:
        for i, (what, callid, fmt, request, expected, check_body) in enumerate(CALLS):
            entry = call("wirebench:requests", str(100 + i), {"call": callid, "format": fmt, "body": request})
            if entry is None:
                check("redis", what, False, "no reply")
                continue
            verify("redis", what, int(entry.get(b"status", b"-1")), expected, entry.get(b"body", b""), check_body)
        entry = call("wirebench:raw", "999", {"body": raw_request()})
        verify_raw("redis", (entry or {}).get(b"body", b""))
    finally:
        r.delete(reply_stream)
        r.close()


# --- mqtt (paho-mqtt, MQTT 5) -----------------------------------------------------------------------


def run_mqtt(address):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port = address.rsplit(":", 1)
    client_id = f"wirebench-py-{os.getpid()}"
    response_topic = f"wirebench/replies/{client_id}"
    subscribed = threading.Event()
    replies = {}
    arrived = threading.Condition()

    def on_subscribe(_client, _userdata, _mid, _reasons, _props):
        subscribed.set()

    def on_message(_client, _userdata, msg):
        props = msg.properties
        correlation = bytes(getattr(props, "CorrelationData", b"") or b"")
        with arrived:
            replies[correlation] = (dict(getattr(props, "UserProperty", []) or []), msg.payload)
            arrived.notify_all()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, int(port))
    client.loop_start()
    try:
        client.subscribe(response_topic, qos=1)
        if not subscribed.wait(DEADLINE):
            check("mqtt", "subscribe to the response topic", False, "no SUBACK")
            return

        def call(topic, n, request, user):
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = response_topic
            props.CorrelationData = struct.pack(">I", n)
            if user:
                props.UserProperty = user
            client.publish(topic, request, qos=1, properties=props)
            with arrived:
                arrived.wait_for(lambda: props.CorrelationData in replies, timeout=DEADLINE)
                return replies.pop(props.CorrelationData, (None, None))

        for i, (what, callid, fmt, request, expected, check_body) in enumerate(CALLS):
            user, data = call("wirebench/requests", 100 + i, request,
                              [("wirebench-call", callid), ("wirebench-format", fmt)])
            if user is None:
                check("mqtt", what, False, "no reply")
                continue
            verify("mqtt", what, int(user.get("wirebench-status", "-1")), expected, data, check_body)
        _, data = call("wirebench/raw", 999, raw_request(), None)
        verify_raw("mqtt", data or b"")
    finally:
        client.loop_stop()
        client.disconnect()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("nats", "rabbitmq", "redis", "mqtt"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    broker, address = sys.argv[1], sys.argv[2]
    try:
        globals()[f"run_{broker}"](address)
    except Exception as e:  # a library error is a failed check, with its reason
        check(broker, "reference client", False, f"{type(e).__name__}: {e}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
