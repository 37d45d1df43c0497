-- credtrail-query ROOT became-root: changes that made the euid or fsuid 0.
-- scope `host`: a host id became 0; `namespace`: only the id a user
-- namespace shows did (setuid(0) in a rootless container, or a namespace
-- that maps the caller to 0), with each namespace's maps as the capture
-- last recorded them (the kernel writes them just after the unshare).
WITH nsrows AS (
  SELECT regexp_extract(input_file_name(), '^(.*)/user_namespaces/[^/]+$', 1) AS capture, *
  FROM user_namespaces),
ns AS (
  SELECT capture, userns, level, uid_map FROM (
    SELECT *, row_number() OVER (PARTITION BY capture, userns ORDER BY seq DESC) AS newest
    FROM nsrows)
  WHERE newest = 1),
e AS (
  SELECT regexp_extract(input_file_name(), '^(.*)/events/[^/]+$', 1) AS capture,
         CASE WHEN pod_name IS NOT NULL THEN concat_ws('/', pod_namespace, pod_name)
              ELSE substr(container_id, 1, 12) END AS pod,
         *
  FROM events
  WHERE (new_euid = 0 AND old_euid <> 0) OR (new_fsuid = 0 AND old_fsuid <> 0)
     OR new_userns_level > 0),
j AS (
  SELECT e.*, o.level AS o_level, o.uid_map AS o_map, n.level AS n_level, n.uid_map AS n_map
  FROM e
  LEFT JOIN ns o ON o.capture = e.capture AND o.userns = e.old_userns
  LEFT JOIN ns n ON n.capture = e.capture AND n.userns = e.new_userns),
-- Each id as its namespace numbers it: the first extent holding it.
ids AS (
  SELECT *,
    CASE WHEN n_level > 0 THEN aggregate(filter(n_map, x -> new_euid >= x.lower_first AND new_euid - x.lower_first < x.count),
                                         CAST(NULL AS BIGINT), (a, x) -> coalesce(a, x.first + new_euid - x.lower_first)) END AS ns_euid,
    CASE WHEN n_level > 0 THEN aggregate(filter(n_map, x -> new_fsuid >= x.lower_first AND new_fsuid - x.lower_first < x.count),
                                         CAST(NULL AS BIGINT), (a, x) -> coalesce(a, x.first + new_fsuid - x.lower_first)) END AS ns_fsuid,
    CASE WHEN o_level > 0 THEN aggregate(filter(o_map, x -> old_euid >= x.lower_first AND old_euid - x.lower_first < x.count),
                                         CAST(NULL AS BIGINT), (a, x) -> coalesce(a, x.first + old_euid - x.lower_first)) END AS ons_euid,
    CASE WHEN o_level > 0 THEN aggregate(filter(o_map, x -> old_fsuid >= x.lower_first AND old_fsuid - x.lower_first < x.count),
                                         CAST(NULL AS BIGINT), (a, x) -> coalesce(a, x.first + old_fsuid - x.lower_first)) END AS ons_fsuid
  FROM j),
-- Ids where they live: mapped in a known namespace, unknown in an unknown
-- one, host ids in the host's.
local AS (
  SELECT *,
    CASE WHEN n_level > 0 THEN ns_euid WHEN coalesce(new_userns_level, 0) > 0 THEN NULL ELSE new_euid END AS n_euid,
    CASE WHEN n_level > 0 THEN ns_fsuid WHEN coalesce(new_userns_level, 0) > 0 THEN NULL ELSE new_fsuid END AS n_fsuid,
    CASE WHEN o_level > 0 THEN ons_euid WHEN coalesce(old_userns_level, 0) > 0 THEN NULL ELSE old_euid END AS o_euid,
    CASE WHEN o_level > 0 THEN ons_fsuid WHEN coalesce(old_userns_level, 0) > 0 THEN NULL ELSE old_fsuid END AS o_fsuid,
    NOT (old_userns <=> new_userns) AS moved
  FROM ids),
scoped AS (
  SELECT *,
    CASE WHEN (new_euid = 0 AND old_euid <> 0) OR (new_fsuid = 0 AND old_fsuid <> 0) THEN 'host'
         WHEN (n_euid = 0 AND (o_euid IS NULL OR o_euid <> 0 OR moved))
           OR (n_fsuid = 0 AND (o_fsuid IS NULL OR o_fsuid <> 0 OR moved)) THEN 'namespace'
    END AS scope
  FROM local)
SELECT min(time) AS time, node_name, first(pod) AS pod, pid, first(binary) AS binary,
       first(arguments) AS arguments, first(parent_binary) AS parent_binary, syscall,
       arg0, arg1, arg2, first(scope) AS scope, first(old_euid) AS old_euid,
       first(new_euid) AS new_euid, first(ns_euid) AS ns_euid, first(old_fsuid) AS old_fsuid,
       first(new_fsuid) AS new_fsuid, count(DISTINCT tid) AS threads, count(*) AS calls, capture
FROM scoped
WHERE scope IS NOT NULL
GROUP BY capture, node_name, pid, exec_id, syscall, arg0, arg1, arg2, ret
ORDER BY min(time_ns), pid
