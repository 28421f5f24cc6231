"""`--threads auto` on a busy machine: run the batch's slices on threads only while that pays.

`DataParallel` (data_parallel.py) cuts every batch into N slices and runs them on N threads.
Idle, that is the fastest way to use N cores. But when another program keeps a core busy, the
threads fight it for the cores: every join of a forward, a backward or an optimizer step waits
for the slowest thread, and Python's GIL is handed between threads that the kernel keeps
descheduling. On the 2-core machine the default command's step then took longer on 2 threads
than on one (BENCHMARKS.md, issue #26). A fixed thread count is right for one of those
machines and wrong for the other, and the load of a shared machine changes during a run.

So `auto` keeps the N slices (the slices decide the arithmetic: the rows of each replica and
the order of the gradient sums) and lets this chooser decide, step by step, whether the slices
run at once on N threads or one after another on the calling thread. Both give the same
numbers bit for bit (the same slices, the same sums in the same order): the choice changes the
speed of a run and never its results, and a resumed run continues exactly whatever it chooses.

The rule, timing each training step (a split forward to the end of its backward):
  1. the first `WARMUP` steps are not timed (first-call costs: allocations, caches);
  2. a trial: `TRIAL` steps on threads, then `TRIAL` one after another (the first step after
     a switch is not timed either); threads are kept only when their median step is at least
     `MARGIN` shorter, else one after another. Beside one busy process the two modes come
     within a few percent of each other, closer than a trial can tell apart: one after another
     took 1.062x and 1.066x `--threads 1`'s step there, threads 1.087x and 1.125x (two runs of
     one process, BENCHMARKS.md, issue #26, fourth round), so a tie goes to the mode that
     leaves the other core to the other program. Idle, threads take about 0.75x one after another's time, far
     past the margin;
  3. every `PERIOD` steps after that, a new trial, so a run follows the machine's load.
A trial's steps in the slower mode are the cost: about 2 * TRIAL / PERIOD of the steps.
Leaves out: counts between 1 and N (a 16-core machine with 4 busy cores runs 16 threads or 1),
and the optimizer's own timing (its threaded step follows the chooser's mode).
"""
import statistics

WARMUP = 2  # steps first, untimed
TRIAL = 4  # timed steps per mode in a trial (plus one untimed after each switch)
PERIOD = 100  # steps between trials
MARGIN = 0.05  # threads are kept only when a trial times them at least this much faster


class ThreadChoice:
    """Whether the next step's slices run on threads; fed each step's time by `record`.

        choice = ThreadChoice()
        parallel = choice.parallel        # for this step's forward, backward and update
        ...                               # the step
        choice.record(seconds)
    """

    def __init__(self, warmup=WARMUP, trial=TRIAL, period=PERIOD):
        self.warmup, self.trial, self.period = warmup, trial, period
        self.parallel = True  # the mode of the step now running
        self.steps = 0  # steps recorded
        self.times = {True: [], False: []}  # this trial's timed steps per mode
        self.kept = True  # the mode the last trial chose
        self.next_trial = warmup  # the step where the next trial starts
        self.switches = []  # (step, parallel) each time a trial changed the kept mode, for reports

    def record(self, seconds):
        """Record the step that just ran (in mode `self.parallel`) and set the next step's mode."""
        step, self.steps = self.steps, self.steps + 1
        start = self.next_trial
        if step < start:  # between trials: the kept mode
            self.parallel = self.kept
            return
        k = step - start  # trial: [untimed, TRIAL timed] on threads, then the same one after another
        phase = k // (self.trial + 1)
        if k % (self.trial + 1):  # not the first step of a phase (its mode just switched)
            self.times[phase == 0].append(seconds)
        if k + 1 < 2 * (self.trial + 1):
            self.parallel = (k + 1) // (self.trial + 1) == 0
            return
        chosen = statistics.median(self.times[True]) <= (1 - MARGIN) * statistics.median(self.times[False])
        if chosen != self.kept:
            self.switches.append((self.steps, chosen))
        self.kept = self.parallel = chosen
        self.times = {True: [], False: []}
        self.next_trial = self.steps + self.period

    def __repr__(self):
        mode = "threads" if self.kept else "one after another"
        return f"ThreadChoice({mode} after {self.steps} steps, {len(self.switches)} switches)"
