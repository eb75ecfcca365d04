//! Akka's worker dial-in (transformation) sample on local nodes over QUIC: one frontend and
//! two backends. Nobody is Up before both backends have joined; the frontend starts serving
//! from its on-member-up callback and has the backends turn text to upper case.
//!
//! `cargo run -p fjell-examples --example worker_dial_in`

use std::time::Duration;

use fjell_examples::worker::{self, Frontend, BACKEND, FRONTEND};
use fjell_examples::{local::Loopback, Error};

fn main() -> Result<(), Error> {
    smol::block_on(async {
        let mut lo = Loopback::new(3)?;
        let (up_tx, up_rx) = async_channel_pair();
        let frontend = lo
            .builder(0)?
            .roles([FRONTEND])
            .configure(worker::configure)
            .start()?;
        let f = frontend.clone();
        frontend.register_on_member_up(move || {
            let _ = up_tx.try_send(Frontend::start(f));
        });
        let mut backends = Vec::new();
        for i in 1..3 {
            let b = lo
                .builder(i)?
                .roles([BACKEND])
                .configure(worker::configure)
                .start()?;
            smol::spawn(worker::backend(b.clone())).detach();
            backends.push(b);
        }
        let front = up_rx.recv().await?;
        println!("the frontend is Up and serving");
        frontend
            .within(
                Duration::from_secs(10),
                front.wait_for_backends(|b| b.len() == 2),
            )
            .await
            .flatten()
            .ok_or("the backends did not register")?;
        for text in ["hello", "cluster", "world"] {
            println!("{text} -> {:?}", front.transform(text).await);
        }
        for b in &backends {
            b.shutdown().await;
        }
        frontend.shutdown().await;
        Ok(())
    })
}

fn async_channel_pair() -> (
    smol::channel::Sender<Frontend>,
    smol::channel::Receiver<Frontend>,
) {
    smol::channel::bounded(1)
}
