//! The biscuit root key every delegation is signed with: one per deployment, kept in the
//! store sealed by the keystore like a signing key.

use uuid::Uuid;

use super::biscuit::BiscuitKeys;
use crate::kernel::error::{EngineError, Result};

/// The setting that holds the biscuit root key: its key id, a NUL, then the key sealed
/// under the master key (or `ref:` and where Vault keeps it).
const BISCUIT_KEY_SETTING: &str = "biscuit_root_key";

/// The biscuit root key: read from the store, or made (once, whichever node is first)
/// and kept there sealed like a signing key.
pub(crate) async fn load_or_create(
    store: &dyn crate::store::SettingsStore,
    keystore: &crate::runtime::keystore::Keystore,
) -> Result<BiscuitKeys> {
    let value = match store.setting(BISCUIT_KEY_SETTING).await? {
        Some(value) => value,
        None => {
            // A fresh id each time: two nodes racing never overwrite each other's sealed
            // key in Vault; the one whose setting lands is the key of the deployment.
            let kid = format!("biscuit-root-{}", Uuid::now_v7().simple());
            let sealed = keystore.seal(&kid, &BiscuitKeys::generate()).await?;
            let mut value = kid.into_bytes();
            value.push(0);
            match sealed.key_ref {
                Some(r) => value.extend_from_slice(format!("ref:{r}").as_bytes()),
                None => value.extend_from_slice(&sealed.private_key),
            }
            store.setting_or_insert(BISCUIT_KEY_SETTING, &value).await?
        }
    };
    let bad = || EngineError::internal("the stored biscuit root key is malformed");
    let split = value.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let kid = String::from_utf8(value[..split].to_vec()).map_err(|_| bad())?;
    let rest = &value[split + 1..];
    let (private_key, key_ref) = match rest.strip_prefix(b"ref:") {
        Some(r) => (Vec::new(), Some(String::from_utf8(r.to_vec()).map_err(|_| bad())?)),
        None => (rest.to_vec(), None),
    };
    BiscuitKeys::from_private(&keystore.unseal_bytes(&kid, &private_key, key_ref.as_deref()).await?)
}
