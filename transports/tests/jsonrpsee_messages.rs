//! jsonrpsee's `params` and `result` are the `json` format's messages, byte
//! for byte, so the row's sizes compare with json over any transport: a
//! stand-in HTTP server records what jsonrpsee's client sends and answers
//! with the `json` format's reply inside a JSON-RPC response.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wirebench_formats::format::json::Json;
use wirebench_formats::{Format, Workload};
use wirebench_transports::framework::jsonrpsee::Jsonrpsee;
use wirebench_transports::{Address, Endpoint, Framework, TransportKind};

/// Serves one connection: each request's body is pushed to `seen`, and
/// answered with `result` (the `json` format's reply) under its id.
async fn stand_in(listener: TcpListener, seen: Arc<Mutex<Vec<String>>>, result: Vec<u8>) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tcp = BufReader::new(tcp);
    loop {
        let mut length = None;
        loop {
            let mut line = String::new();
            if tcp.read_line(&mut line).await.unwrap() == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; length.unwrap()];
        tcp.read_exact(&mut body).await.unwrap();
        let body = String::from_utf8(body).unwrap();
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].clone();
        seen.lock().unwrap().push(body);
        let reply = [format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#).as_bytes(), &result, b"}"].concat();
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", reply.len());
        tcp.write_all(&[head.as_bytes(), &reply].concat()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_and_results_are_the_json_formats_messages() {
    for (workload, method) in [
        (Workload::Multiply, "bench_multiply"),
        (Workload::Echo { size: 1024 }, "bench_echo"),
        (Workload::Digest { records: 100 }, "bench_digest"),
    ] {
        let data = dataset(workload);
        let request = model_request(&data);
        let params = Json::encode_request(&mut Vec::new(), &request).unwrap().to_vec();
        let reply = match data.expected {
            wirebench_formats::Expected::Product(product) => wirebench_formats::Reply::Multiply { product },
            wirebench_formats::Expected::SamePayload => {
                wirebench_formats::Reply::Echo { payload: data.payload.clone().into() }
            }
            wirebench_formats::Expected::Digest(d) => wirebench_formats::Reply::Digest(d),
        };
        let result = Json::encode_reply(&mut Vec::new(), &reply).unwrap().to_vec();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::new(TransportKind::Jsonrpsee, Address::Inet(listener.local_addr().unwrap()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = tokio::spawn(stand_in(listener, seen.clone(), result));
        let client = Jsonrpsee::connect(&endpoint, &client_config()).await.unwrap();
        check_reply(&data, &client.call(&Jsonrpsee::prepare(&request)).await.unwrap());
        drop(client);
        server.abort();

        let bodies = seen.lock().unwrap().clone();
        assert_eq!(bodies.len(), 1, "{workload}");
        let sent: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!((&sent["jsonrpc"], &sent["method"]), (&"2.0".into(), &method.into()), "{workload}");
        let params = std::str::from_utf8(&params).unwrap();
        assert!(bodies[0].contains(&format!(r#""params":{params}"#)), "{workload}: {:.300}", bodies[0]);
    }
}
