//! The shell's per-channel state, indexed like the multiplexer's own table.

use crate::mux::ChannelHandle;

/// Per-channel state of a shell, found by [`ChannelHandle`] in O(1). A handle whose channel
/// is gone finds nothing, even once a newer channel reuses its index: late wakeups and late
/// calls never reach the wrong channel.
#[derive(Debug)]
pub struct Slots<T> {
    entries: Vec<Option<(ChannelHandle, T)>>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` for `handle`; returns what the index held before (a channel the shell
    /// forgot to remove).
    pub fn insert(&mut self, handle: ChannelHandle, value: T) -> Option<T> {
        let i = handle.index();
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, || None);
        }
        let before = self.entries[i].replace((handle, value)).map(|(_, v)| v);
        if before.is_none() {
            self.len += 1;
        }
        before
    }

    /// The state of `handle`'s channel, if it is still there.
    pub fn get(&self, handle: ChannelHandle) -> Option<&T> {
        match self.entries.get(handle.index()) {
            Some(Some((h, v))) if *h == handle => Some(v),
            _ => None,
        }
    }

    /// The same, mutable.
    pub fn get_mut(&mut self, handle: ChannelHandle) -> Option<&mut T> {
        match self.entries.get_mut(handle.index()) {
            Some(Some((h, v))) if *h == handle => Some(v),
            _ => None,
        }
    }

    /// Removes `handle`'s state; a stale handle removes nothing.
    pub fn remove(&mut self, handle: ChannelHandle) -> Option<T> {
        let entry = self.entries.get_mut(handle.index())?;
        if entry.as_ref().is_some_and(|(h, _)| *h == handle) {
            self.len -= 1;
            let (_, v) = entry.take()?;
            // Keep the table as short as its highest live index, so it shrinks with the load.
            while self.entries.last().is_some_and(Option::is_none) {
                self.entries.pop();
            }
            return Some(v);
        }
        None
    }

    /// Channels stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every stored channel, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (ChannelHandle, &T)> {
        self.entries.iter().flatten().map(|(h, v)| (*h, v))
    }

    /// The same, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ChannelHandle, &mut T)> {
        self.entries.iter_mut().flatten().map(|(h, v)| (*h, v))
    }

    /// Keeps the channels for which `keep` answers true; drops the others, in index order.
    pub fn retain(&mut self, mut keep: impl FnMut(ChannelHandle, &mut T) -> bool) {
        for entry in &mut self.entries {
            if let Some((h, v)) = entry
                && !keep(*h, v)
            {
                *entry = None;
                self.len -= 1;
            }
        }
        while self.entries.last().is_some_and(Option::is_none) {
            self.entries.pop();
        }
    }

    /// The handles of every stored channel.
    pub fn handles(&self) -> Vec<ChannelHandle> {
        self.iter().map(|(h, _)| h).collect()
    }
}
