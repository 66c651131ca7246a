//! Regional-indicator flags (🇫🇷) drawn so that every terminal agrees on
//! where they are. ratatui (and unicode-width) treat a pair of regional
//! indicators as one 2-cell grapheme; tmux 3.3 draws it as two 1-cell
//! characters. When a later frame overwrote only the flag's first cell,
//! ratatui assumed the whole flag was gone (as a wide character would be)
//! and never rewrote the second cell, where tmux still showed the second
//! indicator: a ghost (`and one🇷more`, the open bug of issue 16 item 5).
//!
//! [`split`] runs on the finished frame: each pair becomes two 1-cell
//! cells, one indicator each, both always re-sent (`AlwaysUpdate`), so the
//! buffer tracks both cells on its own, and a terminal that joins the two
//! into one flag glyph (kitty, foot, wezterm) always gets them side by
//! side in one write: the same two cells either way. A leaf of the view.

use ratatui::buffer::{Buffer, CellDiffOption};

/// Is `c` a regional indicator (U+1F1E6..=U+1F1FF, 🇦..🇿)?
fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// Split every regional-indicator pair of `buf` into two one-indicator
/// cells (the second takes the cell the pair covered).
pub fn split(buf: &mut Buffer) {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        let mut x = area.left();
        while x < area.right() {
            let pair = {
                let mut chars = buf[(x, y)].symbol().chars();
                match (chars.next(), chars.next(), chars.next()) {
                    (Some(a), Some(b), None)
                        if is_regional_indicator(a) && is_regional_indicator(b) =>
                    {
                        Some((a, b))
                    }
                    _ => None,
                }
            };
            match pair {
                Some((a, b)) if x + 1 < area.right() => {
                    let style = buf[(x, y)].style();
                    buf[(x, y)]
                        .set_char(a)
                        .set_diff_option(CellDiffOption::AlwaysUpdate);
                    buf[(x + 1, y)]
                        .set_char(b)
                        .set_style(style)
                        .set_diff_option(CellDiffOption::AlwaysUpdate);
                    x += 2;
                }
                _ => x += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::style::{Color, Style};

    #[test]
    fn a_pair_becomes_two_cells_that_are_always_sent() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 12, 1));
        buf.set_string(0, 0, "a🇫🇷🇩🇪b", Style::default().fg(Color::Red));
        // ratatui's own idea: two 2-cell graphemes.
        assert_eq!(buf[(1, 0)].symbol(), "🇫🇷");
        split(&mut buf);
        let cells: Vec<&str> = (0..6).map(|x| buf[(x, 0)].symbol()).collect();
        assert_eq!(cells, ["a", "🇫", "🇷", "🇩", "🇪", "b"]);
        assert_eq!(buf[(2, 0)].fg, Color::Red, "the second keeps the style");
        assert_eq!(buf[(2, 0)].diff_option, CellDiffOption::AlwaysUpdate);
        assert_eq!(buf[(0, 0)].diff_option, CellDiffOption::None);
    }

    /// The ghost: a frame with a flag, then one where only the flag's
    /// first cell changes. The diff must rewrite the second cell too.
    #[test]
    fn overwriting_the_first_cell_rewrites_the_second() {
        let area = Rect::new(0, 0, 8, 1);
        let mut before = Buffer::empty(area);
        before.set_string(0, 0, "x🇫🇷 y", Style::default());
        let mut after = Buffer::empty(area);
        after.set_string(0, 0, "xa  y", Style::default());
        // Without the split ratatui writes only cell 1: the terminal keeps
        // the 🇷 tmux put in cell 2.
        let plain: Vec<u16> = before.diff(&after).iter().map(|(x, _, _)| *x).collect();
        assert_eq!(plain, [1], "the bug, as ratatui diffs it");
        split(&mut before);
        split(&mut after);
        let fixed: Vec<(u16, &str)> = before
            .diff(&after)
            .iter()
            .map(|(x, _, c)| (*x, c.symbol()))
            .collect();
        assert_eq!(fixed, [(1, "a"), (2, " ")]);
    }

    #[test]
    fn lone_indicators_and_the_right_edge() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 3, 1));
        buf.set_string(0, 0, "z🇫", Style::default());
        split(&mut buf);
        assert_eq!(buf[(1, 0)].symbol(), "🇫", "a lone indicator stays");
        let mut edge = Buffer::empty(Rect::new(0, 0, 2, 1));
        edge[(1, 0)].set_symbol("🇫🇷");
        split(&mut edge);
        assert_eq!(edge[(1, 0)].symbol(), "🇫🇷", "no cell after it: left alone");
    }
}
