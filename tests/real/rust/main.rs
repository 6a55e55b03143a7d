// A Rust program (tests/cases/real.sh, real_rust), compiled with rustc
// alone: 4 worker threads fed through mpsc channels, state behind an
// Arc<Mutex<..>>, a heap that grows (a Vec and a BTreeMap).  50 steps;
// after each the main thread checks the workers' results and the shared
// state against what it computes itself and prints "step N len L hash H";
// "RESULT ..." at the end.  A mismatch prints "ERROR ..." and exits 1.
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const STEPS: u64 = 50;
const WORKERS: u64 = 4;
const WORK: u64 = 200_000;

fn compute(step: u64, id: u64) -> u64 {
    let mut x = step * WORKERS + id + 1;
    for _ in 0..WORK {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    x
}

fn fail(msg: String) -> ! {
    println!("ERROR {}", msg);
    std::process::exit(1);
}

fn main() {
    let shared: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let (res_tx, res_rx) = mpsc::channel::<(u64, u64, u64)>();
    let mut job_txs = Vec::new();
    let mut handles = Vec::new();
    for id in 0..WORKERS {
        let (tx, rx) = mpsc::channel::<u64>();
        job_txs.push(tx);
        let res_tx = res_tx.clone();
        let shared = Arc::clone(&shared);
        handles.push(thread::spawn(move || {
            for step in rx {
                let v = compute(step, id);
                shared.lock().unwrap().insert(step * WORKERS + id, v);
                res_tx.send((step, id, v)).unwrap();
            }
        }));
    }
    drop(res_tx);
    let mut history: Vec<u64> = Vec::new();
    let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
    let mut hash: u64 = 14695981039346656037;
    for step in 1..=STEPS {
        for tx in &job_txs {
            tx.send(step).unwrap();
        }
        let mut got = vec![0u64; WORKERS as usize];
        for _ in 0..WORKERS {
            let (s, id, v) = res_rx.recv().unwrap();
            if s != step {
                fail(format!("step {}: a result of step {}", step, s));
            }
            got[id as usize] = v;
        }
        for id in 0..WORKERS {
            let want = compute(step, id);
            if got[id as usize] != want {
                fail(format!("step {}: worker {} gave {:x}, expected {:x}", step, id, got[id as usize], want));
            }
            expected.insert(step * WORKERS + id, want);
            history.extend(std::iter::repeat(want).take(1000));
            hash = (hash ^ want).wrapping_mul(1099511628211);
        }
        {
            let map = shared.lock().unwrap();
            if map.len() as u64 != step * WORKERS {
                fail(format!("step {}: the map has {} entries", step, map.len()));
            }
            if *map != expected {
                fail(format!("step {}: the map differs from the expected one", step));
            }
        }
        let mut h2: u64 = 14695981039346656037;
        for (i, v) in history.iter().enumerate() {
            if i % 1000 == 0 {
                h2 = (h2 ^ v).wrapping_mul(1099511628211);
            }
        }
        if h2 != hash || history.len() as u64 != step * WORKERS * 1000 {
            fail(format!("step {}: history hash {:x}, expected {:x}", step, h2, hash));
        }
        println!("step {} len {} hash {:x}", step, history.len(), hash);
        thread::sleep(Duration::from_millis(70));
    }
    drop(job_txs);
    for h in handles {
        h.join().unwrap();
    }
    println!("RESULT steps {} len {} hash {:x}", STEPS, history.len(), hash);
}
