// oneDNN convolutions for XLA:CPU as FFI handlers: forward, input gradient and kernel gradient.
//
// Layouts are cnnjax's: activations (N, *spatial, C) and kernels (*k, C_in / groups, C_out), 1 to 3
// spatial dims, float32. cnnjax.functional.onednn compiles this file once per machine and
// registers the three handlers; see that module for why and when they are used. `threads` is the
// OpenMP team size of a call (0: all cores): small convs run on the calling thread alone, so XLA's
// two threads can each run one.
//
// Activations are read and written in place; only the kernel is reordered to the layout oneDNN
// picks, which is small.

#include <cstdint>
#include <memory>
#include <string>

#include "onednn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using cnnjax_onednn::Buffer;
using cnnjax_onednn::Engine;
using cnnjax_onednn::Stream;
using dnnl::memory;
using Dims = memory::dims;

enum Kind { kForward = 0, kInputGrad = 1, kKernelGrad = 2 };

memory::format_tag KernelTag(size_t spatial, bool grouped) {
  // (*k, C_in / groups, C_out) with C_out ordered group-major: (*k, I, G, O) for oneDNN's grouped weights
  static const memory::format_tag tags[] = {memory::format_tag::wio, memory::format_tag::hwio,
                                            memory::format_tag::dhwio};
  static const memory::format_tag grouped_tags[] = {memory::format_tag::wigo, memory::format_tag::hwigo,
                                                    memory::format_tag::dhwigo};
  return grouped ? grouped_tags[spatial - 1] : tags[spatial - 1];
}

// oneDNN orders a kernel's dims (O, I, *k), or (G, O / G, I / G, *k), whatever the memory layout.
Dims KernelDims(ffi::Span<const int64_t> d, int64_t groups) {
  size_t r = d.size();
  Dims out = groups > 1 ? Dims{groups, d[r - 1] / groups, d[r - 2]} : Dims{d[r - 1], d[r - 2]};
  for (size_t i = 0; i + 2 < r; ++i) out.push_back(d[i]);
  return out;
}

Dims ActivationDims(ffi::Span<const int64_t> d) { return cnnjax_onednn::ActivationDims(d.begin(), d.size()); }

struct Geometry {
  Dims x, w, y, strides, dilation, pad_lo, pad_hi;
  size_t spatial;
  int threads;  // oneDNN builds and runs a primitive for one thread count
  int64_t groups;

  std::string Key(Kind kind) const {
    std::string key = std::to_string(kind) + "|" + std::to_string(threads) + "|" + std::to_string(groups);
    for (const Dims* d : {&x, &w, &y, &strides, &dilation, &pad_lo, &pad_hi}) {
      key += "|";
      for (int64_t v : *d) key += std::to_string(v) + ",";
    }
    return key;
  }
  memory::desc XDesc() const { return memory::desc(x, memory::data_type::f32, cnnjax_onednn::ChannelsLastTag(spatial)); }
  memory::desc YDesc() const { return memory::desc(y, memory::data_type::f32, cnnjax_onednn::ChannelsLastTag(spatial)); }
  memory::desc WDesc() const { return memory::desc(w, memory::data_type::f32, KernelTag(spatial, groups > 1)); }
  memory::desc WAny() const { return memory::desc(w, memory::data_type::f32, memory::format_tag::any); }

  dnnl::convolution_forward::primitive_desc Forward() const {
    return dnnl::convolution_forward::primitive_desc(
        Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, XDesc(), WAny(),
        YDesc(), strides, dilation, pad_lo, pad_hi, cnnjax_onednn::UserScratchpad());
  }
};

Geometry MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> w, ffi::Span<const int64_t> y,
                      ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                      ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t threads,
                      int64_t groups) {
  Geometry g;
  g.threads = cnnjax_onednn::Threads(threads);
  g.groups = groups;
  g.spatial = x.size() - 2;
  g.x = ActivationDims(x);
  g.w = KernelDims(w, groups);
  g.y = ActivationDims(y);
  g.strides.assign(strides.begin(), strides.end());
  for (int64_t d : dilation) g.dilation.push_back(d - 1);  // oneDNN counts the gaps
  g.pad_lo.assign(pad_lo.begin(), pad_lo.end());
  g.pad_hi.assign(pad_hi.begin(), pad_hi.end());
  return g;
}

// One primitive and the kernel's layout it wants; the reorder between cnnjax's kernel layout and it.
struct Plan {
  dnnl::primitive conv;
  memory::desc kernel;   // the primitive's kernel (or kernel gradient) layout
  memory::desc user;     // (*k, C_in, C_out)
  memory::desc scratchpad;
  bool reorder;
  dnnl::reorder to_kernel;
  memory::desc reorder_scratchpad;  // user -> kernel (forward, input gradient) or kernel -> user (kernel gradient)
};

std::shared_ptr<Plan> MakePlan(const Geometry& g, Kind kind) {
  auto plan = std::make_shared<Plan>();
  auto fwd = g.Forward();
  plan->user = g.WDesc();
  if (kind == kForward) {
    plan->conv = dnnl::convolution_forward(fwd);
    plan->kernel = fwd.weights_desc();
    plan->scratchpad = fwd.scratchpad_desc();
  } else if (kind == kInputGrad) {
    auto pd = dnnl::convolution_backward_data::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.XDesc(), g.WAny(), g.YDesc(), g.strides, g.dilation,
        g.pad_lo, g.pad_hi, fwd, cnnjax_onednn::UserScratchpad());
    plan->conv = dnnl::convolution_backward_data(pd);
    plan->kernel = pd.weights_desc();
    plan->scratchpad = pd.scratchpad_desc();
  } else {
    auto pd = dnnl::convolution_backward_weights::primitive_desc(
        Engine(), dnnl::algorithm::convolution_direct, g.XDesc(), g.WAny(), g.YDesc(), g.strides, g.dilation,
        g.pad_lo, g.pad_hi, fwd, cnnjax_onednn::UserScratchpad());
    plan->conv = dnnl::convolution_backward_weights(pd);
    plan->kernel = pd.diff_weights_desc();
    plan->scratchpad = pd.scratchpad_desc();
  }
  plan->reorder = plan->kernel != plan->user;
  if (plan->reorder) {
    dnnl::primitive_attr attr = cnnjax_onednn::UserScratchpad();
    auto pd = kind == kKernelGrad ? dnnl::reorder::primitive_desc(Engine(), plan->kernel, Engine(), plan->user, attr)
                                  : dnnl::reorder::primitive_desc(Engine(), plan->user, Engine(), plan->kernel, attr);
    plan->to_kernel = dnnl::reorder(pd);
    plan->reorder_scratchpad = pd.scratchpad_desc();
  }
  return plan;
}

std::shared_ptr<Plan> GetPlan(const Geometry& g, Kind kind) {
  return cnnjax_onednn::Cached<Plan>(g.Key(kind), [&] { return MakePlan(g, kind); });
}

// Runs one conv. a is x (forward, kernel gradient) or the output gradient (input gradient); b is the
// kernel (forward, input gradient) or the output gradient (kernel gradient); out is y, dx or dw.
ffi::Error Run(Kind kind, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
               ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
               ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t threads, int64_t groups) {
  ffi::Span<const int64_t> x = kind == kInputGrad ? out->dimensions() : a.dimensions();
  ffi::Span<const int64_t> w = kind == kKernelGrad ? out->dimensions() : b.dimensions();
  ffi::Span<const int64_t> y = kind == kForward ? out->dimensions() : kind == kInputGrad ? a.dimensions()
                                                                                          : b.dimensions();
  if (x.size() < 3 || x.size() > 5 || w.size() != x.size() || y.size() != x.size()) {
    return ffi::Error::InvalidArgument("cnnjax oneDNN conv: expected (N, *spatial, C) arrays with 1-3 spatial dims");
  }
  try {
    Geometry g = MakeGeometry(x, w, y, strides, dilation, pad_lo, pad_hi, threads, groups);
    omp_set_num_threads(g.threads);  // this XLA thread's OpenMP teams, for building and running
    auto plan = GetPlan(g, kind);
    auto& stream = Stream();
    memory xm(g.XDesc(), Engine(), kind == kInputGrad ? out->untyped_data() : a.untyped_data());
    memory ym(g.YDesc(), Engine(), kind == kForward ? out->untyped_data() : kind == kInputGrad ? a.untyped_data()
                                                                                               : b.untyped_data());
    memory user(plan->user, Engine(), kind == kKernelGrad ? out->untyped_data() : b.untyped_data());
    memory kernel = plan->reorder ? memory(plan->kernel, Engine(), Buffer(0, plan->kernel.get_size())) : user;
    memory scratch(plan->scratchpad, Engine(), Buffer(1, plan->scratchpad.get_size()));
    if (plan->reorder) {
      memory reorder_scratch(plan->reorder_scratchpad, Engine(), Buffer(2, plan->reorder_scratchpad.get_size()));
      if (kind != kKernelGrad) {
        plan->to_kernel.execute(stream, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, kernel},
                                         {DNNL_ARG_SCRATCHPAD, reorder_scratch}});
      }
    }
    if (kind == kForward) {
      plan->conv.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, kernel}, {DNNL_ARG_DST, ym},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
    } else if (kind == kInputGrad) {
      plan->conv.execute(stream, {{DNNL_ARG_DIFF_SRC, xm}, {DNNL_ARG_WEIGHTS, kernel}, {DNNL_ARG_DIFF_DST, ym},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
    } else {
      plan->conv.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_WEIGHTS, kernel}, {DNNL_ARG_DIFF_DST, ym},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
      if (plan->reorder) {
        memory reorder_scratch(plan->reorder_scratchpad, Engine(), Buffer(2, plan->reorder_scratchpad.get_size()));
        plan->to_kernel.execute(stream, {{DNNL_ARG_FROM, kernel}, {DNNL_ARG_TO, user},
                                         {DNNL_ARG_SCRATCHPAD, reorder_scratch}});
      }
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("cnnjax oneDNN conv: ") + e.what());
  }
  return ffi::Error::Success();
}

template <Kind kind>
ffi::Error Handler(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                   ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                   ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t threads,
                   int64_t groups) {
  return Run(kind, a, b, out, strides, dilation, pad_lo, pad_hi, threads, groups);
}

}  // namespace

#define CNNJAX_CONV_HANDLER(name, kind)                                                               \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(name, Handler<kind>,                                                   \
                                ffi::Ffi::Bind()                                                       \
                                    .Arg<ffi::AnyBuffer>()                                             \
                                    .Arg<ffi::AnyBuffer>()                                             \
                                    .Ret<ffi::AnyBuffer>()                                             \
                                    .Attr<ffi::Span<const int64_t>>("strides")                        \
                                    .Attr<ffi::Span<const int64_t>>("dilation")                       \
                                    .Attr<ffi::Span<const int64_t>>("pad_lo")                         \
                                    .Attr<ffi::Span<const int64_t>>("pad_hi")                         \
                                    .Attr<int64_t>("threads")                                         \
                                    .Attr<int64_t>("groups"));

CNNJAX_CONV_HANDLER(CnnjaxOnednnConv, kForward)
CNNJAX_CONV_HANDLER(CnnjaxOnednnConvInputGrad, kInputGrad)
CNNJAX_CONV_HANDLER(CnnjaxOnednnConvKernelGrad, kKernelGrad)
