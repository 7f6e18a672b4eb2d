//! MQTT topic names and filters: validation, matching and overlap (MQTT 3.1.1 §4.7).

/// Checks a topic filter: `+` and `#` only as whole levels, `#` last.
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("empty topic filter".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!("`{filter}`: `#` must be a whole last level"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("`{filter}`: `+` must be a whole level"));
        }
    }
    Ok(())
}

/// Checks a topic name a client may publish to: non-empty, no wildcards, no NUL, at most 65535 bytes.
pub fn check_name(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > 65_535 || topic.contains(['+', '#', '\0']) {
        return Err(format!("`{topic}` is not a valid topic name"));
    }
    Ok(())
}

/// Whether `topic` matches `filter`. Topics starting with `$` match no wildcard at their first
/// level (MQTT 3.1.1 §4.7.2). A topic holds no wildcard, so this is [`covers`] for one topic.
pub fn matches(filter: &str, topic: &str) -> bool {
    covers(filter, topic)
}

/// Whether some topic matches both filters.
pub fn overlap(a: &str, b: &str) -> bool {
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (Some(x), Some(y)) if x == "+" || y == "+" || x == y => {}
            _ => return false,
        }
    }
}

/// Whether every topic `filter` matches is matched by `allowed` (`sensors/#` covers `sensors/+/t`;
/// `sensors/+` does not cover `sensors/#`).
pub fn covers(allowed: &str, filter: &str) -> bool {
    // Wildcards at the first level do not match `$` topics ($SYS/...).
    if filter.starts_with('$') && allowed.starts_with(['+', '#']) {
        return false;
    }
    let (mut a, mut f) = (allowed.split('/'), filter.split('/'));
    loop {
        match (a.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(x), Some(y)) if x == y => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked() {
        assert!(check_filter("a/+/c/#").is_ok());
        assert!(check_filter("#").is_ok());
        assert!(check_filter("a/#/c").is_err());
        assert!(check_filter("a/b+").is_err());
        assert!(check_filter("").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("a/b").is_ok());
        assert!(check_name("a/+").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn matching_follows_mqtt() {
        assert!(matches("sensors/#", "sensors/a/b"));
        assert!(matches("sensors/#", "sensors"));
        assert!(matches("sensors/+/t", "sensors/x/t"));
        assert!(!matches("sensors/+/t", "sensors/x/y/t"));
        assert!(!matches("sensors/x", "sensors/x/y"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("a/b", "a/b"));
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        assert!(overlap("market/#", "market/a/b"));
        assert!(overlap("market/a/b", "market/#"));
        assert!(overlap("+/a", "x/+"));
        assert!(!overlap("sensors/#", "market/#"));
        assert!(!overlap("a/b", "a/b/c"));
        assert!(overlap("#", "anything"));
    }

    #[test]
    fn filters_cover() {
        assert!(covers("sensors/#", "sensors/+/temp"));
        assert!(covers("sensors/#", "sensors"));
        assert!(covers("sensors/+/temp", "sensors/a/temp"));
        assert!(!covers("sensors/+/temp", "sensors/#"));
        assert!(!covers("sensors/+", "sensors/+/x"));
        assert!(!covers("sensors/a", "sensors/+"));
        assert!(covers("#", "a/b"));
        assert!(!covers("#", "$SYS/x"));
        assert!(!covers("+/x", "$SYS/x"));
        assert!(covers("$SYS/#", "$SYS/x"));
    }
}
