//! Demotion: which paths hold tests, examples, benches, vendored, generated or minified
//! code, judged by directory names and file-name conventions of the common languages.

/// Directory names whose files are demoted, and why.
const DEMOTED_DIRS: &[(&str, &str)] = &[
    ("test", "test"),
    ("tests", "test"),
    ("__tests__", "test"),
    ("spec", "test"),
    ("specs", "test"),
    ("testing", "test"),
    ("testdata", "test"),
    ("example", "example"),
    ("examples", "example"),
    ("demo", "example"),
    ("demos", "example"),
    ("docs_src", "example"),
    ("bench", "bench"),
    ("benches", "bench"),
    ("benchmarks", "bench"),
    ("vendor", "vendored"),
    ("vendored", "vendored"),
    ("_vendor", "vendored"),
    ("third_party", "vendored"),
    ("node_modules", "vendored"),
];

/// Why a path is demoted (test, example, bench, vendored, generated, minified), if it is.
/// Judged by directory names and file-name conventions of the common languages.
pub fn demotion(path: &str) -> Option<&'static str> {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or(path);
    for dir in parts {
        if let Some((_, why)) = DEMOTED_DIRS.iter().find(|(d, _)| *d == dir) {
            return Some(why);
        }
    }
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or(&lower);
    if stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with("_spec")
        || lower.contains(".test.")
        || lower.contains(".spec.")
        || stem == "conftest"
        || stem == "tests"
    {
        return Some("test");
    }
    if lower.contains(".min.") {
        return Some("minified");
    }
    if lower.ends_with(".d.ts")
        || lower.ends_with("_pb2.py")
        || lower.ends_with(".pb.go")
        || lower.contains(".generated.")
        || lower.contains("_generated.")
    {
        return Some("generated");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_examples_and_generated_files_are_demoted() {
        assert_eq!(demotion("/p/tests/test_core.py"), Some("test"));
        assert_eq!(demotion("/p/src/core_test.go"), Some("test"));
        assert_eq!(demotion("/p/src/app.spec.ts"), Some("test"));
        assert_eq!(demotion("/p/examples/basic.rs"), Some("example"));
        assert_eq!(demotion("/p/dist/app.min.js"), Some("minified"));
        assert_eq!(demotion("/p/types/index.d.ts"), Some("generated"));
        assert_eq!(demotion("/p/src/testing_utils.py"), None);
        assert_eq!(demotion("/p/src/core.py"), None);
    }
}
