//! Wrapping styled text to a width in terminal cells, breaking between
//! characters (so wide CJK/emoji never straddle the edge): the chat and
//! the wire view share it. A leaf: it knows no app state.

use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Wrap styled text into lines of at most `width` cells, breaking between
/// characters (so wide CJK/emoji never straddle the edge).
pub fn wrap(spans: Vec<Span<'static>>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in spans {
        let style = span.style;
        let mut buf = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > 0 {
                if !buf.is_empty() {
                    cur.push(Span::styled(std::mem::take(&mut buf), style));
                }
                lines.push(Line::from(std::mem::take(&mut cur)));
                used = 0;
            }
            buf.push(c);
            used += w;
        }
        if !buf.is_empty() {
            cur.push(Span::styled(buf, style));
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(Line::from(cur));
    }
    lines
}
