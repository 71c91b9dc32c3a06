//! The desktop proxy's error paths, over real sockets: a real HTTP server
//! upgrading to a WebSocket, a real unix socket standing in for Xvnc's.

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use futures_util::StreamExt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use verse_web::bridge::{self, End, Options, close};

/// Serves `/vnc`, bridging to `socket`; each bridge's end is sent on the channel.
async fn serve(socket: PathBuf, options: Options) -> (String, mpsc::UnboundedReceiver<End>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/vnc",
        get(move |upgrade: WebSocketUpgrade| {
            let socket = socket.clone();
            let tx = tx.clone();
            async move {
                upgrade.on_upgrade(move |ws| async move {
                    let end = bridge::vnc(
                        ws,
                        &socket,
                        "env `t`",
                        verse_web::rfb::Policy {
                            to_env: true,
                            to_browser: true,
                        },
                        options,
                    )
                    .await;
                    let _ = tx.send(end);
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("ws://{addr}/vnc"), rx)
}

fn quick() -> Options {
    Options {
        send_timeout: Duration::from_millis(300),
    }
}

async fn close_of(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> (Vec<u8>, Option<(CloseCode, String)>) {
    let mut data = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
    {
        match message {
            Message::Binary(b) => data.extend_from_slice(&b),
            Message::Close(frame) => {
                return (data, frame.map(|f| (f.code, f.reason.to_string())));
            }
            _ => {}
        }
    }
    (data, None)
}

#[tokio::test]
async fn an_env_without_a_display_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (url, mut ends) = serve(dir.path().join("vnc.sock"), quick()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (_, close) = close_of(&mut ws).await;
    let (code, reason) = close.expect("a close frame");
    assert_eq!(u16::from(code), close::UNAVAILABLE);
    assert!(
        reason.contains("env `t` has no desktop running"),
        "{reason}"
    );
    assert!(matches!(ends.recv().await, Some(End::Unavailable(_))));
}

#[tokio::test]
async fn a_symlink_in_place_of_the_socket_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.sock");
    let _listener = tokio::net::UnixListener::bind(&real).unwrap();
    let planted = dir.path().join("vnc.sock");
    std::os::unix::fs::symlink(&real, &planted).unwrap();
    let (url, mut ends) = serve(planted, quick()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (_, close) = close_of(&mut ws).await;
    assert_eq!(
        u16::from(close.expect("a close frame").0),
        close::UNAVAILABLE
    );
    match ends.recv().await {
        Some(End::Unavailable(reason)) => assert!(reason.contains("not a socket"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_display_server_closing_reaches_the_browser_after_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vnc.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"RFB 003.008\n").await.unwrap();
        // Dropped: the display server went away.
    });
    let (url, mut ends) = serve(path, quick()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (data, close) = close_of(&mut ws).await;
    assert_eq!(data, b"RFB 003.008\n");
    let (code, reason) = close.expect("a close frame");
    assert_eq!(u16::from(code), close::ENV_CLOSED);
    assert!(reason.contains("closed the connection"), "{reason}");
    assert!(matches!(ends.recv().await, Some(End::Env(_))));
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_dropped_and_frees_the_display() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vnc.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    // The display server writes as fast as it can until the proxy lets go.
    let writer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let chunk = vec![0x55u8; 64 * 1024];
        let mut written = 0usize;
        while stream.write_all(&chunk).await.is_ok() {
            written += chunk.len();
        }
        written
    });
    let (url, mut ends) = serve(path, quick()).await;
    // Connected, but never reads.
    let (_ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(20), ends.recv())
        .await
        .expect("the proxy gave up on the slow browser");
    assert_eq!(end, Some(End::TooSlow));
    let written = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the display server's connection was closed")
        .unwrap();
    // Backpressure, not buffering: what got through is bounded by socket
    // buffers and one message, not by how long the browser stalled.
    assert!(
        written < 64 << 20,
        "{written} bytes were taken from the display server"
    );
}
