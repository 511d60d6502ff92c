// oneDNN max pooling (training: with the workspace that records each window's maximum) for XLA:CPU as
// FFI handlers.
//
// x is (N, *spatial, C) float32 with 1-3 spatial dims, y (N, *out, C); windows `kernel` at `strides`,
// `dilation` (1 = dense) and `pad_lo` / `pad_hi` (padding counts as -inf). The forward returns y and the
// workspace; the gradient takes the workspace and dy and returns dx (each dy element added to its
// window's maximum). cnnjax.functional.onednn_max_pool registers both; see there for when they are used.

#include <cstdint>
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

struct Geometry {
  Dims x, y, kernel, strides, dilation, pad_lo, pad_hi;
  int threads;

  std::string Key(int kind) const {
    std::string key = std::to_string(kind) + "|" + std::to_string(threads);
    for (const Dims* d : {&x, &y, &kernel, &strides, &dilation, &pad_lo, &pad_hi}) {
      key += "|";
      for (int64_t v : *d) key += std::to_string(v) + ",";
    }
    return key;
  }
  memory::desc XDesc() const { return Desc(x); }
  memory::desc YDesc() const { return Desc(y); }
  memory::desc Desc(const Dims& d) const {
    return memory::desc(d, memory::data_type::f32, cnnjax_onednn::ChannelsLastTag(d.size() - 2));
  }
  dnnl::pooling_forward::primitive_desc Forward() const {
    return dnnl::pooling_forward::primitive_desc(Engine(), dnnl::prop_kind::forward_training,
                                                 dnnl::algorithm::pooling_max, XDesc(), YDesc(), strides, kernel,
                                                 dilation, pad_lo, pad_hi, cnnjax_onednn::UserScratchpad());
  }
};

Geometry MakeGeometry(const int64_t* x, const int64_t* y, size_t rank, const int64_t* kernel, const int64_t* strides,
                      const int64_t* dilation, const int64_t* pad_lo, const int64_t* pad_hi, int64_t threads) {
  Geometry g;
  g.threads = cnnjax_onednn::Threads(threads);
  g.x = cnnjax_onednn::ActivationDims(x, rank);
  g.y = cnnjax_onednn::ActivationDims(y, rank);
  size_t n = rank - 2;
  g.kernel.assign(kernel, kernel + n);
  g.strides.assign(strides, strides + n);
  for (size_t i = 0; i < n; ++i) g.dilation.push_back(dilation[i] - 1);  // oneDNN counts the gaps
  g.pad_lo.assign(pad_lo, pad_lo + n);
  g.pad_hi.assign(pad_hi, pad_hi + n);
  return g;
}

Geometry MakeGeometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> y, ffi::Span<const int64_t> kernel,
                      ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                      ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t threads) {
  return MakeGeometry(x.begin(), y.begin(), x.size(), kernel.begin(), strides.begin(), dilation.begin(),
                      pad_lo.begin(), pad_hi.begin(), threads);
}

struct Plan {
  dnnl::primitive pool;
  memory::desc scratchpad, workspace;
};

std::shared_ptr<Plan> ForwardPlan(const Geometry& g) {
  return cnnjax_onednn::Cached<Plan>(g.Key(0), [&] {
    auto pd = g.Forward();
    return std::make_shared<Plan>(Plan{dnnl::pooling_forward(pd), pd.scratchpad_desc(), pd.workspace_desc()});
  });
}

std::shared_ptr<Plan> BackwardPlan(const Geometry& g) {
  return cnnjax_onednn::Cached<Plan>(g.Key(1), [&] {
    auto pd = dnnl::pooling_backward::primitive_desc(Engine(), dnnl::algorithm::pooling_max, g.XDesc(), g.YDesc(),
                                                     g.strides, g.kernel, g.dilation, g.pad_lo, g.pad_hi,
                                                     g.Forward(), cnnjax_onednn::UserScratchpad());
    return std::make_shared<Plan>(Plan{dnnl::pooling_backward(pd), pd.scratchpad_desc(), pd.workspace_desc()});
  });
}

bool RankOk(size_t rank) { return rank >= 3 && rank <= 5; }

ffi::Error Forward(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> ws,
                   ffi::Span<const int64_t> kernel, ffi::Span<const int64_t> strides,
                   ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> pad_lo,
                   ffi::Span<const int64_t> pad_hi, int64_t threads) {
  if (!RankOk(x.dimensions().size())) return ffi::Error::InvalidArgument("cnnjax oneDNN max pool: expected 1-3 spatial dims");
  try {
    Geometry g = MakeGeometry(x.dimensions(), y->dimensions(), kernel, strides, dilation, pad_lo, pad_hi, threads);
    omp_set_num_threads(g.threads);
    auto plan = ForwardPlan(g);
    if (ws->size_bytes() < plan->workspace.get_size()) {
      return ffi::Error::InvalidArgument("cnnjax oneDNN max pool: workspace too small");
    }
    auto& eng = Engine();
    memory scratch(plan->scratchpad, eng, Buffer(1, plan->scratchpad.get_size()));
    plan->pool.execute(Stream(), {{DNNL_ARG_SRC, memory(g.XDesc(), eng, x.untyped_data())},
                                  {DNNL_ARG_DST, memory(g.YDesc(), eng, y->untyped_data())},
                                  {DNNL_ARG_WORKSPACE, memory(plan->workspace, eng, ws->untyped_data())},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
    Stream().wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("cnnjax oneDNN max pool: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::AnyBuffer ws, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dx,
                    ffi::Span<const int64_t> kernel, ffi::Span<const int64_t> strides,
                    ffi::Span<const int64_t> dilation, ffi::Span<const int64_t> pad_lo,
                    ffi::Span<const int64_t> pad_hi, int64_t threads) {
  if (!RankOk(dx->dimensions().size())) return ffi::Error::InvalidArgument("cnnjax oneDNN max pool: expected 1-3 spatial dims");
  try {
    Geometry g = MakeGeometry(dx->dimensions(), dy.dimensions(), kernel, strides, dilation, pad_lo, pad_hi, threads);
    omp_set_num_threads(g.threads);
    auto plan = BackwardPlan(g);
    auto& eng = Engine();
    memory scratch(plan->scratchpad, eng, Buffer(1, plan->scratchpad.get_size()));
    plan->pool.execute(Stream(), {{DNNL_ARG_DIFF_DST, memory(g.YDesc(), eng, dy.untyped_data())},
                                  {DNNL_ARG_DIFF_SRC, memory(g.XDesc(), eng, dx->untyped_data())},
                                  {DNNL_ARG_WORKSPACE, memory(plan->workspace, eng, ws.untyped_data())},
                                  {DNNL_ARG_SCRATCHPAD, scratch}});
    Stream().wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("cnnjax oneDNN max pool gradient: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

// The workspace (bytes) of this pool, or -1 where oneDNN has none: x and y are (N, *spatial, C) dims,
// the rest one value per spatial dim.
extern "C" int64_t CnnjaxOnednnMaxPoolWorkspace(int64_t rank, const int64_t* x, const int64_t* y,
                                                const int64_t* kernel, const int64_t* strides,
                                                const int64_t* dilation, const int64_t* pad_lo,
                                                const int64_t* pad_hi) {
  try {
    Geometry g = MakeGeometry(x, y, static_cast<size_t>(rank), kernel, strides, dilation, pad_lo, pad_hi, 1);
    return static_cast<int64_t>(g.Forward().workspace_desc().get_size());
  } catch (const dnnl::error&) {
    return -1;
  }
}

#define CNNJAX_POOL_ATTRS                                  \
  .Attr<ffi::Span<const int64_t>>("kernel")                \
      .Attr<ffi::Span<const int64_t>>("strides")           \
      .Attr<ffi::Span<const int64_t>>("dilation")          \
      .Attr<ffi::Span<const int64_t>>("pad_lo")            \
      .Attr<ffi::Span<const int64_t>>("pad_hi")            \
      .Attr<int64_t>("threads")

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxOnednnMaxPool, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Ret<ffi::AnyBuffer>()  // y
                                  .Ret<ffi::AnyBuffer>()  // workspace
                                      CNNJAX_POOL_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxOnednnMaxPoolGrad, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // workspace
                                  .Arg<ffi::AnyBuffer>()  // dy
                                  .Ret<ffi::AnyBuffer>()  // dx
                                      CNNJAX_POOL_ATTRS);
