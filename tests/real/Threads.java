// A multi-threaded JVM program (tests/cases/real.sh, real_jvm): 4 worker
// threads and a thread pool, 50 steps.  In each step every worker adds to a
// shared synchronized counter, advances its own random sequence and fills a
// ConcurrentHashMap; the pool sums arrays it allocates (garbage for the
// collector).  After each step the main thread checks every value against
// what it computes itself and prints "step N total T hash H"; "RESULT ..."
// at the end.  A mismatch prints "ERROR ..." and exits with 1.
// COHORT_TEST_GATES="S1 S2 ...": after step Sk the main thread waits until
// the file go.k exists in COHORT_TEST_TMP (tests/cases/migrate_real.sh
// migrates it at known steps); unset, it never waits.
import java.util.concurrent.*;
import java.util.*;

public class Threads {
    static final int NT = 4, STEPS = 50, INC = 20000;
    static final Object lock = new Object();
    static long total = 0;
    static final long[] seq = new long[NT];
    static final ConcurrentHashMap<Integer, Long> map = new ConcurrentHashMap<>();

    static long lcg(long x) { return x * 6364136223846793005L + 1442695040888963407L; }

    static void gate(int step) throws InterruptedException {
        String[] gates = System.getenv().getOrDefault("COHORT_TEST_GATES", "").trim().split("\\s+");
        for (int k = 0; k < gates.length; k++) {
            if (!gates[k].equals(Integer.toString(step))) continue;
            java.io.File go = new java.io.File(System.getenv("COHORT_TEST_TMP"), "go." + (k + 1));
            while (!go.exists()) Thread.sleep(20);
        }
    }

    static void fail(String msg) {
        System.out.println("ERROR " + msg);
        System.exit(1);
    }

    public static void main(String[] args) throws Exception {
        CyclicBarrier start = new CyclicBarrier(NT + 1), done = new CyclicBarrier(NT + 1);
        final int[] stepNo = new int[1];
        Thread[] ws = new Thread[NT];
        for (int t = 0; t < NT; t++) {
            final int id = t;
            seq[t] = id + 1;
            ws[t] = new Thread(() -> {
                try {
                    while (true) {
                        start.await();
                        int s = stepNo[0];
                        if (s < 0) return;
                        for (int k = 0; k < INC; k++) {
                            synchronized (lock) { total++; }
                            seq[id] = lcg(seq[id]);
                        }
                        map.put(s * NT + id, seq[id]);
                        done.await();
                    }
                } catch (Exception e) {
                    fail("worker " + id + ": " + e);
                }
            }, "worker-" + t);
            ws[t].start();
        }
        ExecutorService pool = Executors.newFixedThreadPool(2);
        long[] mine = new long[NT];
        for (int t = 0; t < NT; t++) mine[t] = t + 1;
        long hash = 17;
        for (int s = 1; s <= STEPS; s++) {
            stepNo[0] = s;
            start.await();
            final int ss = s;
            List<Future<Long>> fs = new ArrayList<>();
            for (int j = 0; j < 4; j++) {
                final int jj = j;
                fs.add(pool.submit(() -> {
                    long[] a = new long[50000 + ss * 100 + jj];
                    for (int i = 0; i < a.length; i++) a[i] = (long) i * ss + jj;
                    long sum = 0;
                    for (long v : a) sum += v;
                    return sum;
                }));
            }
            done.await();
            for (int j = 0; j < 4; j++) {
                long n = 50000 + s * 100 + j;
                long want = (n * (n - 1) / 2) * s + n * j;
                long got = fs.get(j).get();
                if (got != want) fail("step " + s + ": pool task " + j + " summed " + got + ", expected " + want);
            }
            synchronized (lock) {
                if (total != (long) s * NT * INC) fail("step " + s + ": total " + total + ", expected " + (long) s * NT * INC);
            }
            for (int t = 0; t < NT; t++) {
                for (int k = 0; k < INC; k++) mine[t] = lcg(mine[t]);
                if (seq[t] != mine[t]) fail("step " + s + ": thread " + t + " sequence " + seq[t] + ", expected " + mine[t]);
                Long m = map.get(s * NT + t);
                if (m == null || m != mine[t]) fail("step " + s + ": map entry " + (s * NT + t) + " is " + m);
                hash = hash * 31 + mine[t];
            }
            if (map.size() != s * NT) fail("step " + s + ": map has " + map.size() + " entries");
            System.out.println("step " + s + " total " + total + " hash " + Long.toHexString(hash));
            gate(s);
            Thread.sleep(70);
        }
        stepNo[0] = -1;
        start.await();
        for (Thread w : ws) w.join();
        pool.shutdown();
        if (!pool.awaitTermination(10, TimeUnit.SECONDS)) fail("the pool did not end");
        System.out.println("RESULT steps " + STEPS + " total " + total + " hash " + Long.toHexString(hash));
    }
}
