//! The bytes of a Thrift RPC call as `docs/protocol.md` shows them: our
//! `thrift-rpc` and `thrift-rpc-binary` clients write exactly these for
//! their first Multiply (sequence id 1), and read a reply and a declared
//! `BenchError` written byte by byte (as Python's Thrift writes them).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::*;
use wirebench_formats::{Batch, Code, OwnedRequest, Reply};
use wirebench_transports::framework::thrift_rpc::{ThriftRpc, ThriftRpcBinary};
use wirebench_transports::{Address, CallError, Endpoint, Framework, FrameworkClient, TransportKind};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

struct Golden {
    call: &'static str,
    reply: &'static str,
    overflow: &'static str,
}

const COMPACT: Golden = Golden {
    call: "00 00 00 13 82 21 01 08 4d 75 6c 74 69 70 6c 79 1c 16 0c 16 0e 00 00",
    reply: "00 00 00 12 82 41 01 08 4d 75 6c 74 69 70 6c 79 0c 00 16 54 00 00",
    overflow: "00 00 00 1b 82 41 02 08 4d 75 6c 74 69 70 6c 79 1c 15 16 18 08 6f 76 65 72 66 6c 6f 77 00 00",
};

const BINARY: Golden = Golden {
    call: "00 00 00 2f 80 01 00 01 00 00 00 08 4d 75 6c 74 69 70 6c 79 00 00 00 01 \
           0c 00 01 0a 00 01 00 00 00 00 00 00 00 06 0a 00 02 00 00 00 00 00 00 00 07 00 00",
    reply: "00 00 00 24 80 01 00 02 00 00 00 08 4d 75 6c 74 69 70 6c 79 00 00 00 01 \
            0c 00 00 0a 00 01 00 00 00 00 00 00 00 2a 00 00",
    overflow: "00 00 00 2f 80 01 00 02 00 00 00 08 4d 75 6c 74 69 70 6c 79 00 00 00 02 \
               0c 00 01 08 00 01 00 00 00 0b 0b 00 02 00 00 00 08 6f 76 65 72 66 6c 6f 77 00 00",
};

async fn golden<F: Framework>(golden: Golden) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (call, reply, overflow) = (hex(golden.call), hex(golden.reply), hex(golden.overflow));
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = vec![0; call.len()];
        s.read_exact(&mut got).unwrap();
        s.write_all(&reply).unwrap();
        // The second call's request (sequence id 2) is answered with the
        // declared exception.
        let mut second = vec![0; call.len()];
        s.read_exact(&mut second).unwrap();
        s.write_all(&overflow).unwrap();
        (got, call)
    });
    let client = F::connect(&Endpoint::new(F::KIND, Address::Inet(address)), &client_config()).await.unwrap();
    let multiply = F::prepare(&OwnedRequest::<Batch>::Multiply { a: 6, b: 7 });
    assert_eq!(client.call(&multiply).await.unwrap(), Reply::Multiply { product: 42 });
    match client.call(&multiply).await {
        Err(CallError::Status(s)) => assert_eq!((s.code, s.message.as_str()), (Code::OutOfRange, "overflow")),
        other => panic!("{}: {other:?}", F::KIND),
    }
    let (got, want) = peer.join().unwrap();
    assert_eq!(got, want, "{}: the first Multiply's bytes", F::KIND);
    let counted = client.counters().unwrap();
    assert_eq!(counted.bytes_sent, 2 * want.len() as u64, "{}", F::KIND);
    assert_eq!(counted.bytes_received, (hex(golden.reply).len() + hex(golden.overflow).len()) as u64, "{}", F::KIND);
}

#[tokio::test(flavor = "current_thread")]
async fn the_compact_client_writes_and_reads_the_documented_bytes() {
    assert_eq!(ThriftRpc::KIND, TransportKind::ThriftRpc);
    golden::<ThriftRpc>(COMPACT).await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_binary_client_writes_and_reads_the_documented_bytes() {
    golden::<ThriftRpcBinary>(BINARY).await;
}
