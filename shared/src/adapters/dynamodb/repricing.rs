//! Repricing on DynamoDB: an hour's events priced again, each rewritten on its own (conditional
//! on still being there, so an event deleted meanwhile is not brought back), then the hour's
//! rollups rebuilt from them as a deletion does, under the compaction lock. The same caveat as a
//! deletion's holds for a batch racing the rebuild; repricing keeps to ended hours.

use super::items::{self, EventItem};
use super::*;
use crate::domain::ids::WorkspaceId;
use crate::domain::pricing::PriceTable;
use crate::domain::pricing::custom::WorkspacePrices;
use crate::domain::time::HOUR_MS;
use crate::ports::{Repricing, StoreResult};
use futures_util::stream;

#[async_trait]
impl Repricing for DynamoStore {
    async fn reprice_events_in_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        from_ms: i64,
        to_ms: i64,
        table: &'static PriceTable,
        prices: &WorkspacePrices,
    ) -> StoreResult<u64> {
        let (lo, hi) = (from_ms.max(hour * HOUR_MS), to_ms.min((hour + 1) * HOUR_MS));
        if lo >= hi {
            return Ok(0);
        }
        // A crashed batch finished after the rebuild would add its rollups on top of it.
        self.recover_stale(ws, self.now_ms()).await?;
        let rules = prices.ready();
        // `{hi}` sorts before every `{hi}#id`: the range ends just before `hi`.
        let stored = self
            .query_all(
                schema::event_pk(ws, hour),
                Some((schema::event_time(lo), schema::event_time(hi))),
                None,
            )
            .await?;
        let mut rewrites = Vec::new();
        for item in stored {
            let stored: EventItem<'static> = items::read(item)?;
            if let Some(e) = stored.d.repriced(table, &rules) {
                let b = stored.b.clone();
                rewrites.push(items::item(
                    schema::event(ws, &e),
                    &EventItem {
                        b,
                        d: std::borrow::Cow::Owned(e),
                        expires_at: stored.expires_at,
                    },
                )?);
            }
        }
        let rewritten: Vec<bool> = stream::iter(rewrites)
            .map(|item| self.put(item, Some("attribute_exists(pk)")))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        // Runs even when nothing was rewritten: a run stopped after its rewrites is finished here.
        self.rebuild_hour(ws, hour).await?;
        Ok(rewritten.into_iter().filter(|done| *done).count() as u64)
    }
}
