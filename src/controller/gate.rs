//! The workers of one controller: at most `--concurrency` reconciles at once, the others waiting in the order
//! they became due within three classes served in turn — objects in the middle of an operation first (a
//! provider Job to follow), then new objects, then steady ones (meters into status, a change seen by the
//! observer). A wave of 10,000 creations then finishes what it started before it starts more (the in-flight
//! set stays small), and a new object is never passed over for ever by steady passes: kube-runtime's own bound
//! keeps due objects in a hash set and takes them in hash order, which under the steady passes of thousands of
//! objects left some waiting indefinitely.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Which queue a reconcile waits in; the first is served first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// An operation under way: a provider Job to follow, a resource being created or changed.
    Working = 0,
    /// An object the operator has not acted on yet.
    New = 1,
    /// Anything else.
    Steady = 2,
}

/// A bounded set of workers with a FIFO queue per [`Class`]. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    state: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    queues: [VecDeque<oneshot::Sender<Worker>>; 3],
    closed: bool,
}

/// One worker, held while a reconcile runs; dropping it hands it to the next waiter.
pub struct Worker {
    gate: Option<Gate>,
}

impl Gate {
    /// `workers` at once (0: no bound).
    pub fn new(workers: usize) -> Self {
        let free = if workers == 0 { usize::MAX } else { workers };
        Gate { state: Arc::new(Mutex::new(State { free, queues: Default::default(), closed: false })) }
    }

    /// Waits for a worker in the queue of `class`; `None` once the gate is closed.
    pub async fn enter(&self, class: Class) -> Option<Worker> {
        let rx = {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            if state.free > 0 && state.queues.iter().all(VecDeque::is_empty) {
                state.free -= 1;
                return Some(Worker { gate: Some(self.clone()) });
            }
            let (tx, rx) = oneshot::channel();
            state.queues[class as usize].push_back(tx);
            rx
        };
        rx.await.ok()
    }

    /// Refuses new entries and sends the waiting ones away (a shutdown): running reconciles keep their workers.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for queue in &mut state.queues {
            queue.clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A worker comes back: to the first waiter still waiting, else to the free count.
    fn release(&self) {
        let mut state = self.lock();
        loop {
            let Some(next) = state.queues.iter_mut().find_map(VecDeque::pop_front) else {
                state.free = state.free.saturating_add(1);
                return;
            };
            match next.send(Worker { gate: Some(self.clone()) }) {
                Ok(()) => return,
                // That waiter went away: forget the worker it would have held (not released again) and try the next.
                Err(mut unused) => unused.gate = None,
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_are_served_by_class_then_in_order_and_a_close_sends_them_away() {
        let gate = Gate::new(1);
        let first = gate.enter(Class::Steady).await.expect("a free worker");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (name, class) in
            [("steady-1", Class::Steady), ("new-1", Class::New), ("working", Class::Working), ("new-2", Class::New)]
        {
            let (gate, order) = (gate.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let worker = gate.enter(class).await;
                order.lock().expect("order").push(name);
                drop(worker);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for w in waiting {
            w.await.expect("joined");
        }
        assert_eq!(*order.lock().expect("order"), ["working", "new-1", "new-2", "steady-1"]);

        let held = gate.enter(Class::New).await.expect("free again");
        let late = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(Class::New).await.is_some() })
        };
        tokio::task::yield_now().await;
        gate.close();
        assert!(!late.await.expect("joined"), "a waiter is sent away at the close");
        assert!(gate.enter(Class::Working).await.is_none(), "and nothing enters after it");
        drop(held);
    }

    #[tokio::test]
    async fn a_waiter_that_went_away_does_not_lose_the_worker() {
        let gate = Gate::new(1);
        let held = gate.enter(Class::Steady).await.expect("a free worker");
        let gone = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(Class::New).await.is_some() })
        };
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let again = tokio::time::timeout(std::time::Duration::from_secs(1), gate.enter(Class::Steady)).await;
        assert!(again.expect("not stuck").is_some(), "the worker came back to the gate");
    }
}
