// moekit CPU: one persistent, process-wide worker pool and parallel_for over it.
//
// Policy:
//  - The pool is created lazily with hardware_concurrency() - 1 workers; the calling thread is
//    always the remaining participant.
//  - A call asks for `threads` participants; 0 means all hardware threads, and requests above the
//    hardware count are capped to it: oversubscribing a few cores only adds context switches.
//  - Calls from several user threads are serialised on one mutex: a second caller waits until the
//    first call's parallel_for returns, then gets the pool. (Results never depend on the thread
//    count, so waiting is the only cost.)
//  - No nested parallelism: a parallel_for issued from inside a parallel_for body runs serially on
//    the thread that issued it.
//  - Items are handed out dynamically in chunks of `grain`, so which thread runs an item varies;
//    callers must make every item's result independent of that (disjoint outputs, fixed order
//    inside an item), which is what keeps results bitwise identical across thread counts.
#pragma once

#include <cstdint>
#include <type_traits>

namespace moekit::cpu {

int hardware_threads() noexcept;
// The participants a call with RunContext::threads = `requested` gets: 0 -> all, capped at all.
int effective_threads(int requested) noexcept;

using RangeBody = void (*)(void* context, std::int64_t begin, std::int64_t end);
void parallel_for_range(std::int64_t items, int threads, std::int64_t grain, RangeBody body, void* context);

// fn(begin, end) over chunks of [0, items), or fn(item) for each item. Rethrows the first
// exception a body threw (after every participant has stopped).
template <class Fn>
void parallel_for(std::int64_t items, int threads, Fn&& fn, std::int64_t grain = 1) {
  using F = std::remove_reference_t<Fn>;
  RangeBody body;
  if constexpr (std::is_invocable_v<F&, std::int64_t, std::int64_t>) {
    body = [](void* c, std::int64_t b, std::int64_t e) { (*static_cast<F*>(c))(b, e); };
  } else {
    body = [](void* c, std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) (*static_cast<F*>(c))(i);
    };
  }
  parallel_for_range(items, threads, grain, body, const_cast<void*>(static_cast<const void*>(&fn)));
}

}  // namespace moekit::cpu
