//! The console's files as the server hands them out (`--web-dir`): the split wasm modules under `/pkg/`
//! have fixed names, so every file is sent with `Cache-Control: no-cache` (a browser revalidates it and
//! gets a 304 while it is unchanged, never a stale module after an upgrade); deep links answer
//! index.html; wasm is sent gzip-compressed to a browser that accepts it.

use server::config::ServerArgs;

const INDEX: &str = "<!doctype html><title>Parapet</title>";

/// A server whose web directory holds index.html, a main module and a route group's module.
async fn serve_console_files() -> (tempfile::TempDir, tempfile::TempDir, String, tokio::sync::oneshot::Sender<()>) {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), INDEX).unwrap();
    std::fs::create_dir(web.path().join("pkg")).unwrap();
    // Compressible, like real code: the same few bytes repeated.
    let module: Vec<u8> = b"\0asm\x01\0\0\0".iter().copied().chain((0..40_000).map(|i| (i % 7) as u8)).collect();
    std::fs::write(web.path().join("pkg").join("app_bg.wasm"), &module).unwrap();
    std::fs::write(web.path().join("pkg").join("split_wizard.wasm"), &module[..1000]).unwrap();

    let data = tempfile::tempdir().unwrap();
    let args = ServerArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data.path().to_owned()),
        web_dir: Some(web.path().to_owned()),
        ..Default::default()
    };
    let server = server::Server::prepare(&args.resolve().unwrap(), Some("console-files-admin-1".into())).await.unwrap();
    let base = format!("http://{}", server.local_addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    (web, data, base, stop)
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn console_files_are_revalidated_compressed_and_deep_links_answer_index_html() {
    let (_web, _data, base, stop) = serve_console_files().await;
    let client = reqwest::Client::new();

    // The main module: wasm, no-cache, with a validator.
    let response = client.get(format!("{base}/pkg/app_bg.wasm")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("application/wasm"));
    assert_eq!(header(&response, "cache-control"), Some("no-cache"));
    let last_modified = header(&response, "last-modified").expect("a Last-Modified to revalidate with").to_owned();
    assert_eq!(response.bytes().await.unwrap().len(), 40_008);

    // Revalidation: unchanged, so 304 and no body.
    let response =
        client.get(format!("{base}/pkg/app_bg.wasm")).header("if-modified-since", &last_modified).send().await.unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(header(&response, "cache-control"), Some("no-cache"));

    // Compressed for a browser that says it can take gzip (reqwest here has no gzip decoder, so the
    // body stays as sent).
    let response =
        client.get(format!("{base}/pkg/app_bg.wasm")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-encoding"), Some("gzip"));
    let sent = response.bytes().await.unwrap().len();
    assert!(sent < 5_000, "40 KB of repetitive wasm went out as {sent} bytes");

    // A route group's module, and a deep link into the console.
    let response = client.get(format!("{base}/pkg/split_wizard.wasm")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "cache-control"), Some("no-cache"));
    let response = client.get(format!("{base}/ha/setup?step=3")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "cache-control"), Some("no-cache"));
    assert_eq!(response.text().await.unwrap(), INDEX);

    // The API is not a file: its answers keep their own caching rules.
    let response = client.get(format!("{base}/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(header(&response, "cache-control"), None);

    let _ = stop.send(());
}
