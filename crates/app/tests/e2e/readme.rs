//! The README's "Try it" walk-through, run as written (with curl, sed and bash)
//! against a server in sandbox mode: the newcomer's first experience stays true.

use crate::helpers::{Backend, TestApp};

/// The first `sh` block after `heading`.
fn sh_block_after(heading: &str) -> String {
    let readme = include_str!("../../../../README.md");
    let (_, after) = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README has a {heading} section"));
    let (_, block) = after.split_once("```sh\n").expect("a sh block");
    let (script, _) = block.split_once("```").expect("the block ends");
    script.to_owned()
}

fn walk_through() -> String {
    sh_block_after("## Try it")
}

async fn run(script: String) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let cwd = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(cwd)
            .output()
            .expect("bash runs")
    })
    .await
    .expect("joined")
}

#[tokio::test]
async fn the_readme_moves_the_sandbox_clock_as_written() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let before = t.clock_now();
    let script = format!(
        "B={}\n{}",
        t.base,
        sh_block_after("### Time in the sandbox")
    );
    let out = run(script).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(r#""now":"#), "{stdout}");
    let moved = t.clock_now() - before;
    assert!(moved >= chrono::Duration::days(9), "{moved}");
    t.stop().await;
}

#[tokio::test]
async fn the_readme_walk_through_runs_as_written_and_captures_with_its_fee() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Demo").await;
    let script = walk_through();
    assert!(
        script.contains("DR=<practitioner id>   TOKEN=<practitioner token>"),
        "{script}"
    );
    let script = script
        .replace("B=http://127.0.0.1:8080", &format!("B={}", t.base))
        .replace(
            "DR=<practitioner id>   TOKEN=<practitioner token>",
            &format!("DR={}   TOKEN={}", dr.id, dr.token),
        );
    let out = run(script).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What each commented step promises.
    for expected in [
        r#""status":"linked""#,
        r#""fee":"0.60","net":"24.40""#,
        r#"{"can_enter":false,"started":false,"#,
        r#""status":"scheduled","video":false,"waiting_room":false}"#,
        r#"{"can_enter":true,"started":false,"#,
        r#""status":"scheduled","video":false,"waiting_room":true}"#,
        r#""status":"captured""#,
        r#""amount_captured":"18.00""#,
        r#""fee":"0.50""#,
        r#""net":"17.50""#,
    ] {
        assert!(stdout.contains(expected), "{expected} not in:\n{stdout}");
    }
    let csv_row = stdout
        .lines()
        .find(|l| l.contains("M. Dupont"))
        .unwrap_or_else(|| panic!("no CSV row for the patient in:\n{stdout}"));
    assert!(
        csv_row.contains("18.00") && csv_row.contains("0.50") && csv_row.contains("17.50"),
        "{csv_row}"
    );
}
