//! Wrapping styled text to a width in terminal cells: at spaces where it
//! can, with a hanging indent, measuring whole grapheme clusters (so a
//! flag, a skin tone or a ZWJ family is one unit, never split, and wide
//! CJK/emoji never straddle the edge): the chat, the event log and the
//! wire view share it. A leaf: it knows no app state.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// [`wrap_indent`] without a hanging indent.
pub fn wrap(spans: Vec<Span<'static>>, width: usize) -> Vec<Line<'static>> {
    wrap_indent(spans, width, 0)
}

/// One grapheme cluster with its style and width in cells.
struct Cell {
    g: String,
    style: Style,
    w: usize,
}

/// Wrap styled text into rows of at most `width` cells, at spaces where it
/// can (a word longer than a row is cut between grapheme clusters); rows
/// after the first start `indent` cells in (a hanging indent under the
/// text, past the time and the nick). Widths are those of whole grapheme
/// clusters (unicode-segmentation + unicode-width), as ratatui's buffer
/// measures them: a flag, a skin-toned hand or a ZWJ family is one unit of
/// the width the buffer gives it, never split, so no cell is left over.
pub fn wrap_indent(spans: Vec<Span<'static>>, width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    // A hanging indent only where it leaves a useful row.
    let indent = if width >= indent + 12 { indent } else { 0 };
    let cells: Vec<Cell> = spans
        .iter()
        .flat_map(|sp| {
            sp.content.graphemes(true).map(move |g| Cell {
                g: g.to_string(),
                style: sp.style,
                w: g.width(),
            })
        })
        .collect();
    let mut rows: Vec<Vec<&Cell>> = vec![Vec::new()];
    let mut used = 0;
    let cap = |rows: &Vec<Vec<&Cell>>| {
        if rows.len() == 1 {
            width
        } else {
            width - indent
        }
    };
    let mut i = 0;
    while i < cells.len() {
        // The next word: non-space clusters, then the spaces after them.
        let mut j = i;
        while j < cells.len() && cells[j].g != " " {
            j += 1;
        }
        let word_w: usize = cells[i..j].iter().map(|c| c.w).sum();
        let mut k = j;
        while k < cells.len() && cells[k].g == " " {
            k += 1;
        }
        if used + word_w > cap(&rows) && used > 0 && word_w <= width - indent {
            // It fits on a row of its own: start one.
            rows.push(Vec::new());
            used = 0;
        }
        for c in &cells[i..j] {
            if used + c.w > cap(&rows) && used > 0 {
                rows.push(Vec::new());
                used = 0;
            }
            if let Some(r) = rows.last_mut() {
                r.push(c);
            }
            used += c.w;
        }
        // Spaces that do not fit at the end of a row are dropped.
        for c in &cells[j..k] {
            if used + c.w <= cap(&rows) {
                if let Some(r) = rows.last_mut() {
                    r.push(c);
                }
                used += c.w;
            }
        }
        i = k;
    }
    let pad = " ".repeat(indent);
    rows.into_iter()
        .enumerate()
        .map(|(n, row)| {
            let mut out: Vec<Span<'static>> = Vec::new();
            if n > 0 && indent > 0 {
                out.push(Span::raw(pad.clone()));
            }
            let mut buf = String::new();
            let mut style = None;
            for c in row {
                if style.is_some_and(|s| s != c.style) {
                    out.push(Span::styled(
                        std::mem::take(&mut buf),
                        style.unwrap_or_default(),
                    ));
                }
                style = Some(c.style);
                buf.push_str(&c.g);
            }
            if !buf.is_empty() {
                out.push(Span::styled(buf, style.unwrap_or_default()));
            }
            Line::from(out)
        })
        .collect()
}
