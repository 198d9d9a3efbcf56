//! What the service's log gets from outside, and how often.
//!
//! Text that comes from outside — a receiver's error body, a host's output, names and URLs an
//! operator typed — goes into log fields through [`Untrusted`], which escapes line breaks,
//! control characters (ANSI escapes among them), the Unicode line and paragraph separators, bidi
//! controls and zero-width characters: such text can make a field unreadable, never a line
//! that looks like one of the service's own. [`Every`] lets a refusal that may repeat thousands
//! of times a second (a connection over the limit, an oversized body) be logged at most once
//! per interval, with how many were not.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Text from outside, displayed with everything that could forge or hide log lines escaped.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<T>(pub T);

/// Whether `c` must not reach a log raw: controls, line and paragraph separators, bidi
/// controls, zero-width characters and the byte-order mark.
pub fn is_hazardous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}'          // line and paragraph separators
            | '\u{202A}'..='\u{202E}'        // bidi embeddings and overrides
            | '\u{2066}'..='\u{2069}'        // bidi isolates
            | '\u{200B}'..='\u{200F}'        // zero-width characters, LRM, RLM
            | '\u{061C}'                     // Arabic letter mark
            | '\u{FEFF}' // byte-order mark
        )
}

impl<T: fmt::Display> fmt::Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        /// Escapes as it writes, so no copy of the text is made.
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    match c {
                        '\n' => self.0.write_str("\\n")?,
                        '\r' => self.0.write_str("\\r")?,
                        '\t' => self.0.write_str("\\t")?,
                        '\\' => self.0.write_str("\\\\")?,
                        c if is_hazardous(c) => write!(self.0, "\\u{{{:04x}}}", c as u32)?,
                        c => self.0.write_char(c)?,
                    }
                }
                Ok(())
            }
        }
        write!(Escaping(f), "{}", self.0)
    }
}

/// Lets something be logged at most once per interval.
#[derive(Debug)]
pub struct Every {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Every {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when it is time to log (`n` occurrences were not logged since the last
    /// time), `None` when this one is counted and left out.
    pub fn due(&self) -> Option<u64> {
        let mut last = self.last.lock().expect("not poisoned");
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_cannot_make_a_line_of_its_own() {
        let body = "oops\n2026-01-01T00:00:00Z  INFO hostwatch::api: FORGED admin logged in\r\x1b[31mred\x1b[0m";
        let shown = Untrusted(body).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\x1b'));
        assert_eq!(
            shown,
            "oops\\n2026-01-01T00:00:00Z  INFO hostwatch::api: FORGED admin logged in\\r\\u{001b}[31mred\\u{001b}[0m"
        );
        assert_eq!(
            Untrusted("a\u{2028}b\u{202E}c\u{200B}d\\e").to_string(),
            "a\\u{2028}b\\u{202e}c\\u{200b}d\\\\e"
        );
        assert_eq!(
            Untrusted("web-1 (10.0.0.5)").to_string(),
            "web-1 (10.0.0.5)"
        );
    }

    #[test]
    fn repeats_are_counted_not_logged() {
        let every = Every::new(Duration::from_secs(3600));
        assert_eq!(every.due(), Some(0));
        assert_eq!(every.due(), None);
        assert_eq!(every.due(), None);
        let soon = Every::new(Duration::ZERO);
        assert_eq!(soon.due(), Some(0));
        assert_eq!(soon.due(), Some(0));
        assert_eq!(every.suppressed.load(Ordering::Relaxed), 2);
    }
}
