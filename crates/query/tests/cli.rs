//! `credtrail-query` as people run it: exit codes and one error line for
//! what it refuses.

use std::process::Command;

const QUERY: &str = env!("CARGO_BIN_EXE_credtrail-query");
const SU_LIKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/su-like");

#[test]
fn answers_and_refuses_sql_that_reads_other_files() {
    let o = Command::new(QUERY)
        .args([SU_LIKE, "summary", "--format", "csv"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        String::from_utf8(o.stdout)
            .unwrap()
            .contains(",setresuid,ok,")
    );

    for sql in [
        "SELECT * FROM read_csv('/etc/shadow')",
        "select * from READ_PARQUET ('/etc/passwd')",
    ] {
        let o = Command::new(QUERY)
            .args([SU_LIKE, "--sql", sql])
            .output()
            .unwrap();
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("add --sql-file-access"), "{stderr}");
        assert!(o.stdout.is_empty());
    }
    // The names in a string are only text.
    let o = Command::new(QUERY)
        .args([
            SU_LIKE,
            "--sql",
            "SELECT 'read_csv(x)' AS s FROM events LIMIT 1",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
