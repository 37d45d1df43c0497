-- credtrail-query ROOT failed: refused attempts, one row per logical change
-- (glibc makes one call per thread for setuid() and friends: grouped by
-- capture, process, call, arguments and result).
WITH e AS (
  SELECT regexp_extract(input_file_name(), '^(.*)/events/[^/]+$', 1) AS capture,
         CASE WHEN pod_name IS NOT NULL THEN concat_ws('/', pod_namespace, pod_name)
              ELSE substr(container_id, 1, 12) END AS pod,
         *
  FROM events
  WHERE ret < 0
     OR (arg0 <> -1 AND ((syscall = 'setfsuid' AND coalesce(new_ns_fsuid, new_fsuid) <> arg0)
                      OR (syscall = 'setfsgid' AND coalesce(new_ns_fsgid, new_fsgid) <> arg0))))
SELECT min(time) AS time, node_name, first(pod) AS pod, pid, first(binary) AS binary,
       first(arguments) AS arguments, syscall, arg0, arg1, arg2, ret,
       count(DISTINCT tid) AS threads, count(*) AS calls, capture,
       CASE ret WHEN 0 THEN 'refused' WHEN -1 THEN 'EPERM' WHEN -11 THEN 'EAGAIN'
                WHEN -12 THEN 'ENOMEM' WHEN -14 THEN 'EFAULT' WHEN -22 THEN 'EINVAL'
                ELSE CAST(ret AS STRING) END AS error
FROM e
GROUP BY capture, node_name, pid, exec_id, syscall, arg0, arg1, arg2, ret
ORDER BY min(time_ns), pid
