//! The node's worker threads: the CPU work of one turn (signing each sold stream's batch, handling
//! the link frames each engine received) runs on several cores at once, one engine per task.
//!
//! Engines share nothing (`Stream`, `BuyerChannel` are plain `Send` structs), so distinct engines
//! can run at the same time; one engine's inputs are still handled in order, by one thread. The
//! turn waits for every task before it commits and acts, so persist-before-act is untouched and
//! the results are the same, engine by engine, whatever the number of workers.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many tasks a turn runs them on the node's own thread: starting threads costs more
/// than it saves when one engine has work (a low message rate: one message per turn).
const MIN_PARALLEL_TASKS: usize = 2;

/// How many threads run a turn's engine work.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    n: NonZeroUsize,
}

impl Workers {
    /// `n` threads (the node's own thread counts as one): 1 runs everything in turn, as before.
    pub fn new(n: NonZeroUsize) -> Workers {
        Workers { n }
    }

    /// As many workers as the machine has cores.
    pub fn available() -> Workers {
        Workers::new(std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
    }

    pub fn count(&self) -> usize {
        self.n.get()
    }

    /// Runs `f` on every task, on up to `n` threads, and returns its results in the tasks' order.
    /// Tasks are taken one at a time by whichever thread is free (costs differ from one engine to
    /// the next), and each task runs on exactly one thread.
    pub fn run<T: Send, R: Send>(&self, tasks: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
        let threads = self.n.get().min(tasks.len());
        if threads < 2 || tasks.len() < MIN_PARALLEL_TASKS {
            return tasks.into_iter().map(f).collect();
        }
        let len = tasks.len();
        let slots: Vec<Mutex<(Option<T>, Option<R>)>> = tasks
            .into_iter()
            .map(|t| Mutex::new((Some(t), None)))
            .collect();
        let next = AtomicUsize::new(0);
        let work = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = slots.get(i) else { break };
                // Each index is taken once: the lock is never contended.
                let task = slot.lock().unwrap_or_else(|e| e.into_inner()).0.take();
                if let Some(task) = task {
                    let result = f(task);
                    slot.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(result);
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
        let results: Vec<R> = slots
            .into_iter()
            .filter_map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()).1)
            .collect();
        assert_eq!(results.len(), len, "every task ran");
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_once_in_order() {
        for n in 1..=4 {
            let workers = Workers::new(NonZeroUsize::new(n).unwrap());
            let mut items: Vec<u64> = (0..1000).collect();
            let out = workers.run(items.iter_mut().collect(), |x| {
                *x += 1;
                *x * 2
            });
            assert_eq!(items, (1..=1000).collect::<Vec<_>>());
            assert_eq!(out, (1..=1000).map(|x| x * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn uses_several_threads() {
        let workers = Workers::new(NonZeroUsize::new(2).unwrap());
        let main = std::thread::current().id();
        let barrier = std::sync::Barrier::new(2);
        // Two tasks that each wait for the other: they can only finish on two threads at once.
        let ids = workers.run(vec![(), ()], |()| {
            barrier.wait();
            std::thread::current().id()
        });
        assert!(
            ids.contains(&main) && ids.iter().any(|id| *id != main),
            "{ids:?}"
        );
    }
}
