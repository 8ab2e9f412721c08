//! The in-process coordinator for a single node: a broadcast channel.

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};

use super::{ClusterEvent, Coordinator};
use crate::error::Result;

pub struct MemoryCoordinator {
    tx: broadcast::Sender<ClusterEvent>,
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        MemoryCoordinator {
            tx: broadcast::channel(1024).0,
        }
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn publish(&self, event: &ClusterEvent) -> Result<()> {
        // No receiver is fine: nobody has anything cached yet.
        let _ = self.tx.send(event.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<mpsc::Receiver<ClusterEvent>> {
        let mut rx = self.tx.subscribe();
        let (out, events) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => ClusterEvent::Everything,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if out.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(events)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
