//! What the recorder gives up: the bounding set before its hooks are attached, everything else right after.

use anyhow::Context as _;

/// The bounding set only limits what a later exec may gain, so it can go
/// before the hooks are attached: the recorder's own 40-odd drops are then
/// not recorded as events in every capture. Keeps what [`drop_capabilities`]
/// keeps.
pub fn drop_bounding_set() -> anyhow::Result<()> {
    use caps::CapSet;
    for cap in caps::all().iter().filter(|c| **c != KEEP) {
        if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, *cap)
                .with_context(|| format!("cannot drop {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

/// The one capability kept: reading other users' files.
const KEEP: caps::Capability = caps::Capability::CAP_DAC_READ_SEARCH;

/// After the programs are attached the recorder needs no privilege but
/// reading other users' files (container bundles, /proc); everything else
/// goes, from every set, and no exec can regain it. These last changes are
/// recorded: the capture shows the recorder giving up its privileges.
pub fn drop_capabilities() -> anyhow::Result<()> {
    use caps::CapSet;
    let keep = KEEP;
    drop_bounding_set()?;
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

/// Sets the nice value of the calling thread, which the threads it starts
/// afterwards inherit (0: left as it is). Raising it needs CAP_SYS_NICE.
pub fn set_nice(nice: i32) -> anyhow::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    // SAFETY: setpriority with integer arguments; 0 names the caller.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        let e = std::io::Error::last_os_error();
        anyhow::bail!(
            "cannot set the recorder's priority to nice {nice} ({e}): raising it needs CAP_SYS_NICE; grant it, or pass --nice 0"
        );
    }
    Ok(())
}
