//! What the recorder gives up once its hooks are attached.

use anyhow::Context as _;

/// After the programs are attached the recorder needs no privilege but
/// reading other users' files (container bundles, /proc); everything else
/// goes, from every set, and no exec can regain it.
pub fn drop_capabilities() -> anyhow::Result<()> {
    use caps::{CapSet, Capability};
    let keep = Capability::CAP_DAC_READ_SEARCH;
    let all = caps::all();
    // The bounding set first, while CAP_SETPCAP is still effective.
    for cap in all.iter().filter(|c| **c != keep) {
        if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, *cap)
                .with_context(|| format!("cannot drop {cap} from the bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).context("cannot clear ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("cannot clear inheritable capabilities")?;
    let kept: caps::CapsHashSet = [keep].into_iter().collect();
    let have = caps::read(None, CapSet::Permitted).context("cannot read capabilities")?;
    let kept: caps::CapsHashSet = kept.intersection(&have).copied().collect();
    caps::set(None, CapSet::Effective, &kept).context("cannot lower effective capabilities")?;
    caps::set(None, CapSet::Permitted, &kept).context("cannot lower permitted capabilities")?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot set no_new_privs");
    }
    Ok(())
}
