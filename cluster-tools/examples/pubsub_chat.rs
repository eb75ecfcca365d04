//! A chat room over distributed publish-subscribe (the Akka documentation's example): three
//! nodes on loopback; everyone in the room subscribes to its topic and says something; every
//! message reaches everyone, wherever they are.
//!
//! ```text
//! cargo run -p fjell-tools --example pubsub_chat
//! ```

mod common;

use fjell_runtime::Smol;
use fjell_tools::hub::Hub;
use fjell_tools::pubsub::{DistributedPubSub, PubSubSettings};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Said {
    who: String,
    text: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let nodes = common::loopback_cluster(3).await?;
        let rooms: Vec<DistributedPubSub> = nodes
            .iter()
            .map(|c| DistributedPubSub::start(&Hub::start(c, Smol), PubSubSettings::default()))
            .collect::<Result<_, _>>()?;
        // One chatter per node joins the room.
        let names = ["ann", "bo", "cy"];
        let inboxes: Vec<_> = rooms
            .iter()
            .map(|r| r.subscribe("room:lobby"))
            .collect::<Result<_, _>>()?;
        for r in &rooms {
            r.wait_for_subscribers("room:lobby", |n| n.len() == 3).await;
        }
        for (room, who) in rooms.iter().zip(names) {
            let said = Said {
                who: who.into(),
                text: format!("hello from {who}"),
            };
            room.publish("room:lobby", &said).await?;
        }
        for (inbox, me) in inboxes.iter().zip(names) {
            for _ in 0..3 {
                let m = inbox.next().await.ok_or("the node stopped")?;
                let said: Said = m.decode()?;
                println!("{me} sees {}: {}", said.who, said.text);
            }
        }
        for n in &nodes {
            n.shutdown().await;
        }
        Ok(())
    })
}
