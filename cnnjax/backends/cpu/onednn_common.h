// What cnnjax's oneDNN FFI handlers share: the engine, a stream per thread, per-call scratchpads, and
// a cache of primitives built once per geometry (building one costs more than running a small op).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"

namespace cnnjax_onednn {

inline dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

inline dnnl::stream& Stream() {  // streams are not thread-safe; XLA may run two ops at once
  thread_local dnnl::stream stream(Engine());
  return stream;
}

// Each call brings its own scratchpad: oneDNN's default one is shared by all primitives, and XLA runs
// independent ops on two threads at once.
inline dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A buffer of at least `bytes`, one per thread and use, grown as needed (so no allocation per call).
inline void* Buffer(int which, size_t bytes) {
  thread_local std::vector<char> buffers[3];
  if (buffers[which].size() < bytes) buffers[which].resize(bytes);
  return buffers[which].data();
}

// The OpenMP team size for a call: `threads` > 0, or every core. Read before any call sets it.
inline int Threads(int64_t threads) {
  static const int all_threads = omp_get_max_threads();
  return threads > 0 ? static_cast<int>(threads) : all_threads;
}

// The plan for `key`, made by `make()` the first time it is asked for.
template <typename Plan, typename Make>
std::shared_ptr<Plan> Cached(const std::string& key, Make make) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<Plan>> plans;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
  }
  std::shared_ptr<Plan> plan = make();
  std::lock_guard<std::mutex> lock(mutex);
  return plans.emplace(key, plan).first->second;
}

// cnnjax's activations are (N, *spatial, C), channels-last: oneDNN's layout tag for them (1-3 spatial dims)...
inline dnnl::memory::format_tag ChannelsLastTag(size_t spatial) {
  static const dnnl::memory::format_tag tags[] = {dnnl::memory::format_tag::nwc, dnnl::memory::format_tag::nhwc,
                                                  dnnl::memory::format_tag::ndhwc};
  return tags[spatial - 1];
}

// ... and their dims in the order oneDNN names them, (N, C, *spatial), whatever the layout.
inline dnnl::memory::dims ActivationDims(const int64_t* d, size_t rank) {
  dnnl::memory::dims out{d[0], d[rank - 1]};
  for (size_t i = 1; i + 1 < rank; ++i) out.push_back(d[i]);
  return out;
}

}  // namespace cnnjax_onednn
