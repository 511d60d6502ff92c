// oneDNN batch normalization (training: the batch's statistics) for XLA:CPU as FFI handlers, with
// the ReLU, or the residual add and ReLU, that follow it in a ResNet fused in.
//
// x is (N, *spatial, C), float32, any number of spatial dims (none included), seen by oneDNN as
// (N, C, S) channels-last with S the product of the spatial sizes. With mode
//   0 (plain):    y = bn(x)                 bn(x) = (x - mean) / sqrt(var + eps) * scale + shift
//   1 (relu):     y = max(bn(x), 0)         oneDNN's fused ReLU, its mask kept in the workspace
//   2 (add_relu): y = max(bn(x) + r, 0)     the add and ReLU as one more pass over y
// with the batch's mean and biased variance. The gradient takes them, y and the workspace back with
// the output gradient and returns the gradients of x, scale, shift and r (r's is empty unless mode 2).
// cnnjax.functional.onednn_batch_norm registers both; see there for when they are used.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "onednn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using cnnjax_onednn::Buffer;
using cnnjax_onednn::Engine;
using cnnjax_onednn::Stream;
using dnnl::memory;

enum Mode { kPlain = 0, kRelu = 1, kAddRelu = 2 };

struct Shape {
  int64_t n, c, s;
  int threads;
  float eps;
  int mode;

  int64_t Size() const { return n * c * s; }
  std::string Key(int kind) const {
    uint32_t eps_bits;
    std::memcpy(&eps_bits, &eps, sizeof eps_bits);
    return std::to_string(kind) + "|" + std::to_string(n) + "," + std::to_string(c) + "," + std::to_string(s) + "|" +
           std::to_string(threads) + "|" + std::to_string(eps_bits) + "|" + std::to_string(mode);
  }
  memory::desc Data() const { return memory::desc({n, c, s}, memory::data_type::f32, memory::format_tag::nwc); }
  memory::desc Channels() const { return memory::desc({c}, memory::data_type::f32, memory::format_tag::a); }
  dnnl::normalization_flags Flags() const {
    auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    return mode == kRelu ? flags | dnnl::normalization_flags::fuse_norm_relu : flags;
  }
  dnnl::batch_normalization_forward::primitive_desc Forward() const {
    return dnnl::batch_normalization_forward::primitive_desc(Engine(), dnnl::prop_kind::forward_training, Data(),
                                                             Data(), eps, Flags(), cnnjax_onednn::UserScratchpad());
  }
};

Shape MakeShape(int64_t n, int64_t c, int64_t s, float eps, int64_t threads, int64_t mode) {
  return Shape{n, c, s, cnnjax_onednn::Threads(threads), eps, static_cast<int>(mode)};
}

Shape MakeShape(ffi::Span<const int64_t> dims, float eps, int64_t threads, int64_t mode) {
  int64_t s = 1;
  for (size_t i = 1; i + 1 < dims.size(); ++i) s *= dims[i];
  return MakeShape(dims[0], dims[dims.size() - 1], s, eps, threads, mode);
}

struct Plan {
  dnnl::primitive bn;
  memory::desc scratchpad, workspace;
};

std::shared_ptr<Plan> ForwardPlan(const Shape& s) {
  return cnnjax_onednn::Cached<Plan>(s.Key(0), [&] {
    auto pd = s.Forward();
    return std::make_shared<Plan>(
        Plan{dnnl::batch_normalization_forward(pd), pd.scratchpad_desc(), pd.workspace_desc()});
  });
}

std::shared_ptr<Plan> BackwardPlan(const Shape& s) {
  return cnnjax_onednn::Cached<Plan>(s.Key(1), [&] {
    auto pd = dnnl::batch_normalization_backward::primitive_desc(Engine(), dnnl::prop_kind::backward, s.Data(),
                                                                 s.Data(), s.Data(), s.eps, s.Flags(), s.Forward(),
                                                                 cnnjax_onednn::UserScratchpad());
    return std::make_shared<Plan>(
        Plan{dnnl::batch_normalization_backward(pd), pd.scratchpad_desc(), pd.workspace_desc()});
  });
}

void* Data(ffi::AnyBuffer b) { return b.untyped_data(); }
void* Data(ffi::Result<ffi::AnyBuffer>& b) { return b->untyped_data(); }

ffi::Error Check(size_t workspace_bytes, const Plan& plan) {
  if (workspace_bytes < plan.workspace.get_size()) {
    return ffi::Error::InvalidArgument("cnnjax oneDNN batch norm: workspace too small");
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer scale, ffi::AnyBuffer shift, ffi::AnyBuffer r,
                   ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> mean, ffi::Result<ffi::AnyBuffer> var,
                   ffi::Result<ffi::AnyBuffer> ws, float eps, int64_t threads, int64_t mode) {
  if (x.dimensions().size() < 2) return ffi::Error::InvalidArgument("cnnjax oneDNN batch norm: expected (N, ..., C)");
  try {
    Shape s = MakeShape(x.dimensions(), eps, threads, mode);
    omp_set_num_threads(s.threads);
    auto plan = ForwardPlan(s);
    if (auto err = Check(ws->size_bytes(), *plan); err.failure()) return err;
    auto& eng = Engine();
    memory scratch(plan->scratchpad, eng, Buffer(1, plan->scratchpad.get_size()));
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(s.Data(), eng, Data(x))},
                                         {DNNL_ARG_DST, memory(s.Data(), eng, Data(y))},
                                         {DNNL_ARG_SCALE, memory(s.Channels(), eng, Data(scale))},
                                         {DNNL_ARG_SHIFT, memory(s.Channels(), eng, Data(shift))},
                                         {DNNL_ARG_MEAN, memory(s.Channels(), eng, Data(mean))},
                                         {DNNL_ARG_VARIANCE, memory(s.Channels(), eng, Data(var))},
                                         {DNNL_ARG_SCRATCHPAD, scratch}};
    if (s.mode == kRelu) args.emplace(DNNL_ARG_WORKSPACE, memory(plan->workspace, eng, Data(ws)));
    plan->bn.execute(Stream(), args);
    Stream().wait();
    if (s.mode == kAddRelu) {
      float* out = static_cast<float*>(Data(y));
      const float* add = static_cast<const float*>(Data(r));
      const int64_t size = s.Size();
#pragma omp parallel for simd num_threads(s.threads) schedule(static)
      for (int64_t i = 0; i < size; ++i) out[i] = std::max(out[i] + add[i], 0.0f);
    }
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("cnnjax oneDNN batch norm: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::AnyBuffer x, ffi::AnyBuffer mean, ffi::AnyBuffer var, ffi::AnyBuffer scale,
                    ffi::AnyBuffer y, ffi::AnyBuffer ws, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dx,
                    ffi::Result<ffi::AnyBuffer> dscale, ffi::Result<ffi::AnyBuffer> dshift,
                    ffi::Result<ffi::AnyBuffer> dr, float eps, int64_t threads, int64_t mode) {
  if (x.dimensions().size() < 2) return ffi::Error::InvalidArgument("cnnjax oneDNN batch norm: expected (N, ..., C)");
  try {
    Shape s = MakeShape(x.dimensions(), eps, threads, mode);
    omp_set_num_threads(s.threads);
    auto plan = BackwardPlan(s);
    if (auto err = Check(ws.size_bytes(), *plan); err.failure()) return err;
    void* grad = Data(dy);
    if (s.mode == kAddRelu) {  // through the ReLU: dr = dy where y > 0, and bn's output gradient is the same
      const float* out = static_cast<const float*>(Data(y));
      const float* g = static_cast<const float*>(Data(dy));
      float* masked = static_cast<float*>(Data(dr));
      const int64_t size = s.Size();
#pragma omp parallel for simd num_threads(s.threads) schedule(static)
      for (int64_t i = 0; i < size; ++i) masked[i] = out[i] > 0.0f ? g[i] : 0.0f;
      grad = masked;
    }
    auto& eng = Engine();
    memory scratch(plan->scratchpad, eng, Buffer(1, plan->scratchpad.get_size()));
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(s.Data(), eng, Data(x))},
                                         {DNNL_ARG_MEAN, memory(s.Channels(), eng, Data(mean))},
                                         {DNNL_ARG_VARIANCE, memory(s.Channels(), eng, Data(var))},
                                         {DNNL_ARG_SCALE, memory(s.Channels(), eng, Data(scale))},
                                         {DNNL_ARG_DIFF_DST, memory(s.Data(), eng, grad)},
                                         {DNNL_ARG_DIFF_SRC, memory(s.Data(), eng, Data(dx))},
                                         {DNNL_ARG_DIFF_SCALE, memory(s.Channels(), eng, Data(dscale))},
                                         {DNNL_ARG_DIFF_SHIFT, memory(s.Channels(), eng, Data(dshift))},
                                         {DNNL_ARG_SCRATCHPAD, scratch}};
    if (s.mode == kRelu) args.emplace(DNNL_ARG_WORKSPACE, memory(plan->workspace, eng, Data(ws)));
    plan->bn.execute(Stream(), args);
    Stream().wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("cnnjax oneDNN batch norm gradient: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

// The workspace (bytes) the forward of this shape and mode needs: the ReLU's mask, whose layout is oneDNN's.
extern "C" int64_t CnnjaxOnednnBatchNormWorkspace(int64_t n, int64_t c, int64_t s, float eps, int64_t mode) {
  try {
    return static_cast<int64_t>(MakeShape(n, c, s, eps, 1, mode).Forward().workspace_desc().get_size());
  } catch (const dnnl::error&) {
    return -1;
  }
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxOnednnBatchNorm, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // scale
                                  .Arg<ffi::AnyBuffer>()  // shift
                                  .Arg<ffi::AnyBuffer>()  // r: like x in mode 2, else empty
                                  .Ret<ffi::AnyBuffer>()  // y
                                  .Ret<ffi::AnyBuffer>()  // mean
                                  .Ret<ffi::AnyBuffer>()  // var
                                  .Ret<ffi::AnyBuffer>()  // workspace
                                  .Attr<float>("eps")
                                  .Attr<int64_t>("threads")
                                  .Attr<int64_t>("mode"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxOnednnBatchNormGrad, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // mean
                                  .Arg<ffi::AnyBuffer>()  // var
                                  .Arg<ffi::AnyBuffer>()  // scale
                                  .Arg<ffi::AnyBuffer>()  // y
                                  .Arg<ffi::AnyBuffer>()  // workspace
                                  .Arg<ffi::AnyBuffer>()  // dy
                                  .Ret<ffi::AnyBuffer>()  // dx
                                  .Ret<ffi::AnyBuffer>()  // dscale
                                  .Ret<ffi::AnyBuffer>()  // dshift
                                  .Ret<ffi::AnyBuffer>()  // dr: like x in mode 2, else empty
                                  .Attr<float>("eps")
                                  .Attr<int64_t>("threads")
                                  .Attr<int64_t>("mode"));
