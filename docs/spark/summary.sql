-- credtrail-query ROOT summary: counts per node, syscall, result, pod and binary.
-- A refused setfsuid/setfsgid returns the old id, not an error: it is one
-- whose id (as the caller's namespace shows it) is not the one asked for.
SELECT node_name, syscall, result, pod, binary,
       count(*) AS events, count(DISTINCT pid) AS processes
FROM (
  SELECT node_name, syscall, pid, binary,
         CASE WHEN ret < 0
                OR (arg0 <> -1 AND ((syscall = 'setfsuid' AND coalesce(new_ns_fsuid, new_fsuid) <> arg0)
                                 OR (syscall = 'setfsgid' AND coalesce(new_ns_fsgid, new_fsgid) <> arg0)))
              THEN 'failed' ELSE 'ok' END AS result,
         CASE WHEN pod_name IS NOT NULL THEN concat_ws('/', pod_namespace, pod_name)
              ELSE substr(container_id, 1, 12) END AS pod
  FROM events)
GROUP BY node_name, syscall, result, pod, binary
ORDER BY events DESC, node_name NULLS LAST, syscall NULLS LAST, result NULLS LAST,
         pod NULLS LAST, binary NULLS LAST
