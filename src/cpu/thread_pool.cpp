#include "cpu/thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace moekit::cpu {
namespace {

// Set on pool workers for their whole life and on a caller while it takes part in a job: a
// parallel_for issued from inside a body then runs serially instead of waiting on the pool it is
// part of (which would deadlock).
thread_local bool t_inside_job = false;

struct Job {
  Job(RangeBody b, void* c, std::int64_t n, std::int64_t g) : body(b), context(c), items(n), grain(g) {}

  RangeBody body;
  void* context;
  std::int64_t items;
  std::int64_t grain;
  std::atomic<std::int64_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;

  void work() {
    for (;;) {
      const std::int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= items) return;
      try {
        body(context, b, std::min(items, b + grain));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(items, std::memory_order_relaxed);  // stop handing out work
      }
    }
  }
};

class Pool {
 public:
  static Pool& instance() {
    static Pool pool;
    return pool;
  }

  int workers() const noexcept { return int(workers_.size()); }

  // Runs `job` on the caller plus `helpers` workers; returns when all of them are done.
  void run(int helpers, Job& job) {
    std::lock_guard<std::mutex> call(call_mutex_);  // one job at a time (see thread_pool.hpp)
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      wanted_ = helpers;
      running_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    t_inside_job = true;
    job.work();
    t_inside_job = false;
    std::unique_lock<std::mutex> lock(mutex_);
    // A worker of this generation cannot miss it: the next generation starts only after every
    // wanted worker has checked out here.
    done_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  Pool() {
    const int n = hardware_threads() - 1;
    workers_.reserve(std::size_t(std::max(0, n)));
    for (int i = 0; i < n; ++i) workers_.emplace_back([this, i] { loop(i); });
  }

  void loop(int index) {
    t_inside_job = true;
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= wanted_) continue;
      Job* job = job_;
      lock.unlock();
      job->work();
      lock.lock();
      if (--running_ == 0) done_.notify_one();
    }
  }

  std::mutex call_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int wanted_ = 0;
  int running_ = 0;
  bool stop_ = false;
};

}  // namespace

int hardware_threads() noexcept {
  static const int n = int(std::max(1u, std::thread::hardware_concurrency()));
  return n;
}

int effective_threads(int requested) noexcept {
  const int hw = hardware_threads();
  return requested <= 0 || requested > hw ? hw : requested;
}

void parallel_for_range(std::int64_t items, int threads, std::int64_t grain, RangeBody body, void* context) {
  if (items <= 0) return;
  grain = std::max<std::int64_t>(1, grain);
  const std::int64_t chunks = (items + grain - 1) / grain;
  const int participants = int(std::min<std::int64_t>(effective_threads(threads), chunks));
  if (participants <= 1 || t_inside_job) {
    for (std::int64_t b = 0; b < items; b += grain) body(context, b, std::min(items, b + grain));
    return;
  }
  Pool& pool = Pool::instance();
  Job job(body, context, items, grain);
  pool.run(std::min(participants - 1, pool.workers()), job);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace moekit::cpu
