/**
 * Which worker thread takes a task (a piscina load balancer). Shared tasks go to the least busy thread with room
 * (fewer than `tasksPerThread`): their handlers interleave while they await. An exclusive task — a message that was
 * running on a thread that died beside others, so it runs again alone to tell whether it killed the thread — needs
 * an idle thread. Under steady load no thread may ever fall idle, so the balancer reserves the least busy one: it
 * takes no new shared task until it drained and took the exclusive one. (piscina's own balancer never shares a
 * thread with an abortable task and never reserves one, so an exclusive task could wait for ever.)
 *
 * A thread whose event loop has not beaten for a while (`responsive` false: a handler blocks it, until the watchdog
 * terminates it) is passed over while another thread has room, so a blocking handler holds up as few other tasks as
 * possible. Only a preference: with no other room the task still goes there (it must never wait for an event that
 * may not come).
 */
export interface BalancedWorker {
  /** The worker's threadId. */
  readonly id: number;
  /** Tasks it runs now (piscina: Infinity while it runs an abortable, i.e. exclusive, task). */
  readonly currentUsage: number;
  readonly isRunningAbortableTask: boolean;
}

export interface BalancedTask {
  /** Exclusive tasks are handed to piscina with an abort signal: it marks them. */
  readonly isAbortable: boolean;
}

export function threadBalancer(
  tasksPerThread: number,
  responsive: (threadId: number) => boolean = () => true,
): <W extends BalancedWorker>(task: BalancedTask, workers: W[]) => W | null {
  let reserved: number | undefined;
  const leastBusy = <W extends BalancedWorker>(workers: W[], fits: (w: W) => boolean): W | null => {
    let best: W | null = null;
    for (const w of workers) if (fits(w) && (best === null || w.currentUsage < best.currentUsage)) best = w;
    return best;
  };
  return <W extends BalancedWorker>(task: BalancedTask, workers: W[]): W | null => {
    if (reserved !== undefined && !workers.some((w) => w.id === reserved)) reserved = undefined; // it died
    if (task.isAbortable) {
      const idle = workers.find((w) => w.currentUsage === 0 && w.id === reserved) ?? workers.find((w) => w.currentUsage === 0);
      if (idle) {
        if (idle.id === reserved) reserved = undefined;
        return idle;
      }
      if (reserved === undefined) {
        reserved = (leastBusy(workers, (w) => !w.isRunningAbortableTask && responsive(w.id)) ?? leastBusy(workers, (w) => !w.isRunningAbortableTask))?.id;
      }
      return null;
    }
    const open = (w: W): boolean => w.id !== reserved && !w.isRunningAbortableTask && w.currentUsage < tasksPerThread;
    return leastBusy(workers, (w) => open(w) && responsive(w.id)) ?? leastBusy(workers, open);
  };
}
