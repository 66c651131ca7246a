//! "Write before sleep" for the fan-out: a scope, opened by a task around
//! one turn of synchronous work (a reader handling what one read brought),
//! collects the members its deliveries found idle; when the scope ends, each
//! of them is flushed once — one vectored send (`sendmsg`) carrying everything it was owed
//! meanwhile, from this turn and from any other task's. Redis does the same
//! once per event-loop turn (`beforeSleep` -> `handleClientsWithPendingWrites`).
//!
//! A turn that owes more than [`INLINE_MAX`] members wakes their writer
//! tasks instead, as a bare fan-out server does, and a room with more
//! members than that never owes them at all (`hub::Room::fan_out_chat`):
//! measured on 1,000-member rooms, writing them all from the reader's task
//! tripled the p99, while the writers run beside the reader and each takes
//! everything queued by the time it runs.
//!
//! The list is thread-local: a scope never spans an `.await` (the guard is
//! not `Send`), so the deliveries and the flush run on the same thread, with
//! no lock and no task wake-up. Outside any scope, deliveries go to the
//! member's writer task instead (see [`crate::outbox`]).

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;

/// A member that can be owed a flush.
pub trait Flush: Send + Sync {
    /// Write what is queued (non-blocking); hand the rest to the writer.
    fn flush(&self);
    /// Leave all of it to the member's writer task (woken now).
    fn hand_off(&self);
}

/// A turn that owes more members than this hands them to their writer
/// tasks instead of writing them itself: a big room's members are then
/// written in parallel with the reader (which goes back to reading, so more
/// messages coalesce into each member's next write), as a bare fan-out
/// server does; small rooms keep the direct write (no wake-up per delivery).
pub const INLINE_MAX: usize = 64;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static OWED: RefCell<Vec<Arc<dyn Flush>>> = const { RefCell::new(Vec::new()) };
}

/// While alive, deliveries on this thread are deferred to its end. Scopes
/// nest; the outermost one flushes.
#[must_use = "the flush happens when the scope is dropped"]
pub struct Scope {
    /// Not `Send`: the scope must end on the thread that opened it.
    _thread: PhantomData<*const ()>,
}

/// Open a scope (see [`Scope`]).
pub fn scope() -> Scope {
    DEPTH.with(|d| d.set(d.get() + 1));
    Scope {
        _thread: PhantomData,
    }
}

/// Is a scope open on this thread (may a delivery be deferred)?
pub fn active() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Owe `member` a flush at the end of the current scope. Call only when
/// [`active`] (outside a scope the member is flushed at once).
pub fn defer(member: Arc<dyn Flush>) {
    if active() {
        OWED.with(|o| o.borrow_mut().push(member));
    } else {
        member.flush();
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let depth = DEPTH.with(|d| {
            let n = d.get().saturating_sub(1);
            d.set(n);
            n
        });
        if depth == 0 {
            flush_all();
        }
    }
}

/// Flush every owed member, keeping the list's buffer for the next turn.
fn flush_all() {
    let mut list = OWED.with(|o| std::mem::take(&mut *o.borrow_mut()));
    let inline = list.len() <= INLINE_MAX;
    for m in list.drain(..) {
        if inline {
            m.flush();
        } else {
            m.hand_off();
        }
    }
    OWED.with(|o| {
        let mut o = o.borrow_mut();
        if o.is_empty() {
            *o = list;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counter(AtomicUsize, AtomicUsize);

    impl Flush for Counter {
        fn flush(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn hand_off(&self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A turn owing many members (a big room) hands them to their writer
    /// tasks; up to INLINE_MAX it writes them itself.
    #[test]
    fn a_big_turn_hands_off_to_the_writers() {
        for (n, inline) in [(INLINE_MAX, true), (INLINE_MAX + 1, false)] {
            let cs: Vec<Arc<Counter>> = (0..n).map(|_| Arc::default()).collect();
            {
                let _turn = scope();
                for c in &cs {
                    defer(c.clone());
                }
            }
            for c in &cs {
                let (f, h) = (c.0.load(Ordering::Relaxed), c.1.load(Ordering::Relaxed));
                assert_eq!((f, h), if inline { (1, 0) } else { (0, 1) }, "{n} owed");
            }
        }
    }

    #[test]
    fn the_outermost_scope_flushes_once() {
        let c = Arc::new(Counter::default());
        assert!(!active());
        {
            let _outer = scope();
            {
                let _inner = scope();
                defer(c.clone());
            }
            assert_eq!(c.0.load(Ordering::Relaxed), 0, "an inner scope defers");
        }
        assert_eq!(c.0.load(Ordering::Relaxed), 1);
        assert!(!active());
        defer(c.clone());
        assert_eq!(c.0.load(Ordering::Relaxed), 2, "no scope: flushed at once");
    }
}
