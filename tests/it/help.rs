use clap::CommandFactory;

pub const BINARIES: [&str; 5] = [
    "credtrail-record",
    "credtrail-workload",
    "credtrail-replay",
    "credtrail-query",
    "credtrail-ship",
];

fn long_help(mut cmd: clap::Command) -> String {
    // A fixed width: the binaries wrap to the terminal, snapshots may not.
    cmd = cmd.term_width(100);
    cmd.render_long_help().to_string()
}

#[test]
fn help_texts() {
    let texts = [
        long_help(credtrail_recorder::cli::Cli::command()),
        long_help(credtrail_workload::cli::Cli::command()),
        long_help(credtrail_replay::Cli::command()),
        long_help(credtrail_query::cli::Cli::command()),
        long_help(credtrail_ship::cli::Cli::command()),
    ];
    for (name, text) in BINARIES.iter().zip(texts) {
        insta::assert_snapshot!(*name, text);
    }
}
