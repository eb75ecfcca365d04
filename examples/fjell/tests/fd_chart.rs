//! `fjell fd-chart` for given settings: the printed numbers and the chart file.

use std::process::Command;

#[test]
fn a_chart_of_the_default_detector_with_its_numbers() {
    let dir = std::env::temp_dir().join(format!("fjell-fd-chart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fjell"))
        .current_dir(&dir)
        .args([
            "fd-chart",
            "--std-deviation",
            "100ms,1s",
            "--width",
            "640",
            "--height",
            "400",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Defaults: suspected when phi reaches 8, z ≈ 5.61 standard deviations past 1 s + 3 s.
    let after = |label: &str| -> f64 {
        let line = stdout.lines().find(|l| l.starts_with(label)).unwrap();
        line.split_whitespace().nth(5).unwrap().parse().unwrap()
    };
    assert!((after("std 100 ms") - 4561.0).abs() <= 2.0, "{stdout}");
    assert!((after("std 1000 ms") - 9612.0).abs() <= 5.0, "{stdout}");
    // The chart: an SVG of the asked size, with both curves and the threshold in the legend.
    let svg = std::fs::read_to_string(dir.join("fd-chart.svg")).unwrap();
    assert!(
        svg.starts_with("<svg width=\"640\" height=\"400\""),
        "{}",
        &svg[..80]
    );
    assert!((5_000..500_000).contains(&svg.len()), "{} bytes", svg.len());
    for text in [
        "std 100 ms (suspected after",
        "std 1000 ms (suspected after",
        "threshold 8",
    ] {
        assert!(svg.contains(text), "no {text:?} in the chart");
    }
    // A bad duration is refused with the reason.
    let bad = Command::new(env!("CARGO_BIN_EXE_fjell"))
        .current_dir(&dir)
        .args(["fd-chart", "--min-std-deviation", "100"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a duration with a unit"));
    let _ = std::fs::remove_dir_all(&dir);
}
