//! The HTML report in a real browser: headless Chromium opens
//! `index.html` from file://, and the test checks that it loads without
//! console errors or network requests, draws its charts, filters the
//! table of cells as one types, and takes a screenshot.
//!
//! Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: NUL-terminated JSON on file descriptors
//! 3 and 4), so no port, no websocket and no extra crate is needed.
//!
//! - No Chromium (`chromium`, `chromium-browser`, `google-chrome` on
//!   PATH, or /usr/bin/chromium): prints `skipped: chromium not found`
//!   and passes, unless WIREBENCH_REQUIRE_BROWSER=1.
//! - WIREBENCH_CHROMIUM=path uses that browser instead.
//! - WIREBENCH_SCREENSHOT=path also saves the screenshot there.
//! - WIREBENCH_SCREENSHOT_SECTIONS=dir saves one screenshot per section.
//! - WIREBENCH_RESULTS=path renders that results file instead of the
//!   quick-slice fixture (used for docs/report.png).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use wirebench_reports::Results;
use wirebench_reports::render;

const VIEWPORT: (u32, u32) = (1400, 1000);
const FILTER_TEXT: &str = "protobuf/tcp";

fn find_chromium() -> Option<PathBuf> {
    // WIREBENCH_CHROMIUM=path picks the browser (a path that is not a file
    // means "none").
    if let Some(path) = std::env::var_os("WIREBENCH_CHROMIUM") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let fixed = PathBuf::from("/usr/bin/chromium");
    fixed.is_file().then_some(fixed)
}

/// A headless Chromium this test started, spoken to over a pipe.
struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: Receiver<Value>,
    next_id: u64,
    /// Events seen so far (with their session id, if any).
    events: Vec<Value>,
    deadline: Instant,
}

impl Browser {
    fn launch(chromium: &Path, profile: &Path) -> Browser {
        // The shell moves our pipes to fds 3 (commands) and 4 (replies),
        // as --remote-debugging-pipe expects, then becomes Chromium.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec 3<&0 4>&1 0</dev/null 1>/dev/null; exec \"$0\" \"$@\"")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={},{}", VIEWPORT.0, VIEWPORT.1))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let to_browser = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if message.last() == Some(&0) {
                            message.pop();
                        }
                        match serde_json::from_slice::<Value>(&message) {
                            Ok(v) => {
                                if tx.send(v).is_err() {
                                    return;
                                }
                            }
                            Err(e) => eprintln!("unreadable DevTools message: {e}"),
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to_browser,
            from_browser: rx,
            next_id: 0,
            events: Vec::new(),
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    fn recv(&mut self) -> Value {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("Chromium did not answer in time"),
            Err(RecvTimeoutError::Disconnected) => panic!("Chromium closed the DevTools pipe (did it start?)"),
        }
    }

    /// Sends a command and waits for its reply, keeping events.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).expect("a JSON value serializes");
        bytes.push(0);
        self.to_browser.write_all(&bytes).expect("write to chromium");
        self.to_browser.flush().expect("write to chromium");
        loop {
            let v = self.recv();
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Waits for an event of `method`.
    fn wait_for(&mut self, method: &str) -> Value {
        if let Some(e) = self.events.iter().find(|e| e["method"] == method) {
            return e.clone();
        }
        loop {
            let v = self.recv();
            if v.get("method").is_some() {
                self.events.push(v.clone());
                if v["method"] == method {
                    return v;
                }
            }
        }
    }

    /// Reads events that have arrived, without waiting.
    fn drain(&mut self) {
        while let Ok(v) = self.from_browser.try_recv() {
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Evaluates a JavaScript expression in the page, returning its value.
    fn eval(&mut self, session: &str, expression: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating {expression}: {ex}");
        }
        r["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask politely, then make sure: only the child this test started.
        let mut bytes = json!({ "id": 999_999, "method": "Browser.close" }).to_string().into_bytes();
        bytes.push(0);
        let _ = self.to_browser.write_all(&bytes);
        let _ = self.to_browser.flush();
        let give_up = Instant::now() + Duration::from_secs(3);
        while Instant::now() < give_up {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What went wrong in the page: console errors, exceptions, error log
/// entries (CSP violations land there) and requests that left file://.
fn problems(events: &[Value], page_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
                out.push(format!("console.{}: {}", p["type"], p["args"]));
            }
            "Runtime.exceptionThrown" => out.push(format!("exception: {}", p["exceptionDetails"])),
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                out.push(format!("log {}: {} {}", p["entry"]["level"], p["entry"]["text"], p["entry"]["url"]));
            }
            "Network.requestWillBeSent" => {
                let url = p["request"]["url"].as_str().unwrap_or("");
                if url != page_url && !url.starts_with("data:") {
                    out.push(format!("network request: {url}"));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_report_works_in_chromium() {
    let Some(chromium) = find_chromium() else {
        if std::env::var("WIREBENCH_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("chromium not found, and WIREBENCH_REQUIRE_BROWSER=1");
        }
        println!("skipped: chromium not found");
        return;
    };
    let started = Instant::now();
    let results: Results = match std::env::var_os("WIREBENCH_RESULTS") {
        Some(path) => Results::read(Path::new(&path)).expect("WIREBENCH_RESULTS"),
        None => common::load("quick-slice.json"),
    };
    let dir = tempfile::tempdir().unwrap();
    let rendered = render::render_all(&results, &dir.path().join("report")).unwrap();
    let page_url = format!("file://{}", rendered.html.canonicalize().unwrap().display());

    let mut browser = Browser::launch(&chromium, &dir.path().join("profile"));
    let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
    let target_id = target["targetId"].as_str().expect("targetId").to_owned();
    let attached = browser.call(None, "Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }));
    let session = attached["sessionId"].as_str().expect("sessionId").to_owned();
    let s = Some(session.as_str());
    for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
        browser.call(s, domain, json!({}));
    }
    browser.call(
        s,
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false }),
    );
    browser.call(s, "Page.navigate", json!({ "url": page_url }));
    browser.wait_for("Page.loadEventFired");

    // The script ran to its end and drew every part.
    assert_eq!(browser.eval(&session, "document.documentElement.dataset.rendered"), json!("true"));
    assert_eq!(browser.eval(&session, "document.querySelectorAll('.error-box').length"), json!(0));
    let script_ms = browser.eval(&session, "document.documentElement.dataset.renderMs");
    let parts = browser.eval(&session, "document.documentElement.dataset.renderTimes");
    println!(
        "the page's script drew everything in {} ms: {}",
        script_ms.as_str().unwrap_or("?"),
        parts.as_str().unwrap_or("?")
    );
    let title = browser.eval(&session, "document.title");
    assert!(title.as_str().unwrap_or("").starts_with("wirebench"), "{title}");

    // Charts: SVGs with a real size in every chart section, lines drawn.
    let charts = browser.eval(
        &session,
        r#"(() => {
            const out = {};
            for (const id of ['spectra', 'payload-charts', 'scaling-charts', 'overhead-charts']) {
                const svgs = [...document.querySelectorAll('#' + id + ' svg')];
                out[id] = svgs.filter(s => { const r = s.getBoundingClientRect(); return r.width > 100 && r.height > 100; }).length;
            }
            out.lines = [...document.querySelectorAll('#spectra svg path')].filter(p => (p.getAttribute('d') || '').length > 20).length;
            out.bars = document.querySelectorAll('#payload-charts rect.bar').length;
            out.heatCells = document.querySelectorAll('#heatmaps table.hm td').length;
            return out;
        })()"#,
    );
    println!("charts drawn: {charts}");
    let workloads = results.cells.values().map(|c| c.workload.as_str()).collect::<std::collections::BTreeSet<_>>();
    let measured = results.cells.values().filter(|c| c.metrics.is_some() && c.format != "raw").count();
    let any = |n: usize| u64::from(n > 0);
    assert_eq!(charts["spectra"], json!(2 * workloads.len()), "two spectrum charts per workload: {charts}");
    assert_eq!(charts["payload-charts"], json!(2 * any(workloads.len())), "{charts}");
    assert_eq!(charts["scaling-charts"], json!(4 * any(workloads.len())), "{charts}");
    assert_eq!(charts["overhead-charts"], json!(workloads.len()), "{charts}");
    assert!(charts["lines"].as_u64().unwrap() >= any(measured), "spectrum lines: {charts}");
    assert!(charts["bars"].as_u64().unwrap() >= any(measured), "payload bars: {charts}");
    assert!(charts["heatCells"].as_u64().unwrap() >= any(measured), "heat map cells: {charts}");
    if results.cells.is_empty() {
        let empty = browser.eval(&session, "document.querySelector('#heatmaps').childElementCount");
        assert_eq!(empty, json!(0), "an empty run shows the 'nothing to show' note");
    }

    // The screenshot: the top of the page, as a colleague first sees it.
    let shot = browser.call(s, "Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().expect("png data")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let shot_path = dir.path().join("report.png");
    std::fs::write(&shot_path, &png).unwrap();
    println!("screenshot: {} ({} bytes)", shot_path.display(), png.len());
    if let Some(path) = std::env::var_os("WIREBENCH_SCREENSHOT") {
        std::fs::write(&path, &png).unwrap();
        println!("screenshot saved to {}", Path::new(&path).display());
    }

    // WIREBENCH_SCREENSHOT_SECTIONS=dir: one screenshot per section, for
    // looking at the whole page.
    if let Some(out) = std::env::var_os("WIREBENCH_SCREENSHOT_SECTIONS") {
        std::fs::create_dir_all(&out).unwrap();
        let boxes = browser.eval(
            &session,
            r#"[...document.querySelectorAll('main > section')].map(s => {
                const r = s.getBoundingClientRect();
                return { id: s.id, x: 0, y: r.top + window.scrollY, width: document.documentElement.scrollWidth, height: r.height };
            })"#,
        );
        for b in boxes.as_array().unwrap() {
            let clip = json!({ "x": b["x"], "y": b["y"], "width": b["width"], "height": b["height"], "scale": 1 });
            let shot = browser.call(
                s,
                "Page.captureScreenshot",
                json!({ "format": "png", "clip": clip, "captureBeyondViewport": true }),
            );
            let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
            let path = Path::new(&out).join(format!("{}.png", b["id"].as_str().unwrap()));
            std::fs::write(&path, png).unwrap();
            println!("section screenshot: {}", path.display());
        }
    }

    // Every control works: each metric tab, each option of each dropdown.
    let exercised = browser.eval(
        &session,
        r#"(() => {
            let n = 0;
            for (const b of document.querySelectorAll('#summary-controls .tabs button')) { b.click(); n++; }
            for (const sel of document.querySelectorAll('main .controls select')) {
                if (sel.id === 'status-filter') continue;
                const original = sel.value;
                for (const o of sel.options) { sel.value = o.value; sel.dispatchEvent(new Event('change')); n++; }
                sel.value = original; sel.dispatchEvent(new Event('change'));
            }
            document.querySelector('#summary-controls .tabs button')?.click();
            return { n, errors: document.querySelectorAll('.error-box').length,
                     svgs: document.querySelectorAll('main svg').length };
        })()"#,
    );
    println!("controls exercised: {exercised}");
    assert_eq!(exercised["errors"], json!(0), "{exercised}");
    if measured > 0 {
        assert!(exercised["n"].as_u64().unwrap() >= 10, "{exercised}");
    }

    // The table: every cell a row; typing into #filter leaves the
    // matching ones.
    let visible_keys = r#"[...document.querySelectorAll('#cells tbody tr')]
        .filter(tr => tr.getClientRects().length > 0).map(tr => tr.dataset.key).sort()"#;
    let all: Vec<String> = serde_json::from_value(browser.eval(&session, visible_keys)).unwrap();
    let mut expected_all: Vec<String> = results.cells.keys().cloned().collect();
    expected_all.sort();
    assert_eq!(all, expected_all, "before filtering every cell is a visible row");
    // Type a filter that matches some cells (protobuf/tcp in the fixture).
    let filter = if expected_all.iter().any(|k| k.contains(FILTER_TEXT)) {
        FILTER_TEXT.to_owned()
    } else {
        expected_all.first().map(|k| k.split('/').take(2).collect::<Vec<_>>().join("/")).unwrap_or("x".into())
    };
    browser.eval(&session, "document.querySelector('#filter').focus()");
    browser.call(s, "Input.insertText", json!({ "text": filter }));
    let filtered: Vec<String> = serde_json::from_value(browser.eval(&session, visible_keys)).unwrap();
    let expected: Vec<String> = expected_all.iter().filter(|k| k.contains(&filter)).cloned().collect();
    if std::env::var_os("WIREBENCH_RESULTS").is_none() {
        assert!(!expected.is_empty() && expected.len() < expected_all.len());
    }
    assert_eq!(filtered, expected, "rows left after typing {filter:?}");
    println!("filter {filter:?}: {} of {} rows visible", filtered.len(), all.len());
    // Sorting by a header keeps the filter.
    browser.eval(&session, "document.querySelector('#cells thead th:nth-child(7)').click()");
    let sorted: Vec<String> = serde_json::from_value(browser.eval(&session, visible_keys)).unwrap();
    assert_eq!(sorted, expected);

    // Nothing went wrong along the way, and nothing was fetched.
    std::thread::sleep(Duration::from_millis(200));
    browser.drain();
    let problems = problems(&browser.events, &page_url);
    assert!(problems.is_empty(), "the page had problems:\n{}", problems.join("\n"));
    let requests = browser.events.iter().filter(|e| e["method"] == "Network.requestWillBeSent").count();
    println!("requests: {requests} (the page itself), console errors: 0, in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
