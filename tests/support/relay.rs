//! A TCP relay on a free loopback port in front of a server (the shared kube-apiserver),
//! that a test can cut. While it is down it closes the connections it relays and closes
//! new ones at once, so a client meets an unreachable API server; once it is up again,
//! the same address reaches the real server. The shared server itself is never stopped,
//! because every other test of the binary uses it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    down: bool,
    /// Both ends of every relayed connection, to cut them.
    open: Vec<TcpStream>,
}

/// The running relay; it stops when dropped.
pub struct Relay {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
}

impl Relay {
    /// Relays `127.0.0.1:PORT` to `target` (`host:port`).
    pub fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("relay address").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (target, st, stop) = (target.to_owned(), state.clone(), stopped.clone());
        std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = conn else { continue };
                    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
                    if s.down {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&target) else {
                        continue;
                    };
                    for end in [&client, &server] {
                        if let Ok(c) = end.try_clone() {
                            s.open.push(c);
                        }
                    }
                    pipe(&client, &server);
                    pipe(&server, &client);
                }
            })
            .expect("start the relay thread");
        Relay {
            addr,
            state,
            stopped,
        }
    }

    /// Cuts every relayed connection and refuses new ones until [`Relay::up`].
    pub fn down(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.down = true;
        for c in s.open.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Relays new connections again.
    pub fn up(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).down = false;
    }
}

/// Copies `from` to `to` on a thread of its own; at the end, closes `to` for writing.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.down();
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the stop.
        let _ = TcpStream::connect(&self.addr);
    }
}
