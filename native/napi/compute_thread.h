// One thread of the process runs every native computation (the addon's workers hand
// their work to it and wait).
//
// Why: libgomp keeps one thread pool per thread that opens a parallel region. Node's
// libuv pool has four threads, so work queued from JS would open up to four OpenMP
// pools, and once libgomp manages more threads than there are cores it stops spinning
// at barriers and sleeps on a futex at every one of them (its "throttled" wait). A
// decode step opens ~40 parallel regions: on 2 cores that was ~44 context switches per
// step and 10-15% of the generation time in the kernel. With one computing thread
// there is one pool, the threads spin briefly between regions as OpenMP intends, and
// two calls never fight over the same cores (they would only slow each other down).
// The cost: calls on different models run one after another instead of side by side.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace score_napi {

class ComputeThread {
 public:
  // The process's compute thread, started on first use. It is never destroyed (a
  // joinable std::thread destroyed at exit would terminate the process), and it holds
  // no model state: it only runs what it is given.
  static ComputeThread& get() {
    static ComputeThread* t = new ComputeThread();
    return *t;
  }

  // Runs fn on the compute thread and waits for it; an exception thrown by fn is
  // rethrown here. Called from libuv worker threads (never from the JS thread, and
  // never from fn itself, which would wait for itself).
  void run(const std::function<void()>& fn) {
    std::packaged_task<void()> task(fn);
    std::future<void> done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
    done.get();
  }

 private:
  ComputeThread() { std::thread([this] { loop(); }).detach(); }

  void loop() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();  // stores the result or the exception in the caller's future
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> queue_;
};

}  // namespace score_napi
