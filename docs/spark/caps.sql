-- credtrail-query ROOT caps: capabilities gained (+) and lost (-) per set,
-- one row per logical change (as failed.sql groups them). Bit b is
-- capability cap[b + 1] (linux/capability.h), CAP_<b> past the last name.
WITH e AS (
  SELECT regexp_extract(input_file_name(), '^(.*)/events/[^/]+$', 1) AS capture,
         CASE WHEN pod_name IS NOT NULL THEN concat_ws('/', pod_namespace, pod_name)
              ELSE substr(container_id, 1, 12) END AS pod,
         *
  FROM events
  WHERE old_cap_effective <> new_cap_effective OR old_cap_permitted <> new_cap_permitted OR old_cap_inheritable <> new_cap_inheritable OR old_cap_bounding <> new_cap_bounding OR old_cap_ambient <> new_cap_ambient),
c AS (
  SELECT min(time) AS time, min(time_ns) AS first_ns, node_name, first(pod) AS pod, pid,
         first(binary) AS binary, syscall, count(DISTINCT tid) AS threads, count(*) AS calls,
         capture,
         first(old_cap_effective) AS old_cap_effective, first(new_cap_effective) AS new_cap_effective,
         first(old_cap_permitted) AS old_cap_permitted, first(new_cap_permitted) AS new_cap_permitted,
         first(old_cap_inheritable) AS old_cap_inheritable, first(new_cap_inheritable) AS new_cap_inheritable,
         first(old_cap_bounding) AS old_cap_bounding, first(new_cap_bounding) AS new_cap_bounding,
         first(old_cap_ambient) AS old_cap_ambient, first(new_cap_ambient) AS new_cap_ambient
  FROM e
  GROUP BY capture, node_name, pid, exec_id, syscall, arg0, arg1, arg2, ret),
names AS (SELECT array('CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID',
                 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE',
                 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW',
                 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO',
                 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN',
                 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
                 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE',
                 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN',
                 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
                 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE') AS cap)
SELECT time, node_name, pod, pid, binary, syscall, threads, calls, capture,
       concat_ws(' ', filter(transform(sequence(0, 63), b -> CASE
           WHEN (shiftright(new_cap_effective, b) & 1) = 1 AND (shiftright(old_cap_effective, b) & 1) = 0 THEN concat('+', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
           WHEN (shiftright(new_cap_effective, b) & 1) = 0 AND (shiftright(old_cap_effective, b) & 1) = 1 THEN concat('-', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
         END), x -> x IS NOT NULL)) AS effective,
       concat_ws(' ', filter(transform(sequence(0, 63), b -> CASE
           WHEN (shiftright(new_cap_permitted, b) & 1) = 1 AND (shiftright(old_cap_permitted, b) & 1) = 0 THEN concat('+', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
           WHEN (shiftright(new_cap_permitted, b) & 1) = 0 AND (shiftright(old_cap_permitted, b) & 1) = 1 THEN concat('-', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
         END), x -> x IS NOT NULL)) AS permitted,
       concat_ws(' ', filter(transform(sequence(0, 63), b -> CASE
           WHEN (shiftright(new_cap_inheritable, b) & 1) = 1 AND (shiftright(old_cap_inheritable, b) & 1) = 0 THEN concat('+', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
           WHEN (shiftright(new_cap_inheritable, b) & 1) = 0 AND (shiftright(old_cap_inheritable, b) & 1) = 1 THEN concat('-', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
         END), x -> x IS NOT NULL)) AS inheritable,
       concat_ws(' ', filter(transform(sequence(0, 63), b -> CASE
           WHEN (shiftright(new_cap_bounding, b) & 1) = 1 AND (shiftright(old_cap_bounding, b) & 1) = 0 THEN concat('+', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
           WHEN (shiftright(new_cap_bounding, b) & 1) = 0 AND (shiftright(old_cap_bounding, b) & 1) = 1 THEN concat('-', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
         END), x -> x IS NOT NULL)) AS bounding,
       concat_ws(' ', filter(transform(sequence(0, 63), b -> CASE
           WHEN (shiftright(new_cap_ambient, b) & 1) = 1 AND (shiftright(old_cap_ambient, b) & 1) = 0 THEN concat('+', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
           WHEN (shiftright(new_cap_ambient, b) & 1) = 0 AND (shiftright(old_cap_ambient, b) & 1) = 1 THEN concat('-', coalesce(try_element_at(cap, b + 1), concat('CAP_', CAST(b AS STRING))))
         END), x -> x IS NOT NULL)) AS ambient
FROM c CROSS JOIN names
ORDER BY first_ns, pid
