#include "loom/core/tensor.hpp"

#include "kernels/backend.hpp"
#include "loom/autograd/engine.hpp"
#include "loom/core/cuda.hpp"
#include "loom/autograd/grad_mode.hpp"
#include "loom/autograd/node.hpp"
#include "loom/ops/creation.hpp"
#include "loom/ops/elementwise.hpp"
#include "loom/ops/shape.hpp"

namespace loom {

void check_defined(const Tensor& t, const char* op, const char* arg) {
  LOOM_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
}

namespace {
const TensorImpl& get(const std::shared_ptr<TensorImpl>& impl) {
  LOOM_CHECK(impl != nullptr, "operation on an undefined tensor");
  return *impl;
}
}  // namespace

const Shape& Tensor::shape() const { return get(impl_).shape; }
const Strides& Tensor::strides() const { return get(impl_).strides; }
int64_t Tensor::offset() const { return get(impl_).offset; }
int64_t Tensor::dim() const { return static_cast<int64_t>(shape().size()); }
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const { return loom::numel(shape()); }
DType Tensor::dtype() const { return get(impl_).dtype; }
Device Tensor::device() const { return get(impl_).storage->device(); }
const std::shared_ptr<Storage>& Tensor::storage() const { return get(impl_).storage; }
uint64_t Tensor::version() const { return storage()->version(); }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element to misplace
  const auto& sh = shape();
  const auto& st = strides();
  int64_t expected = 1;
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<int64_t>(itemsize(dtype()));
}

Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor empty(const Shape& shape, TensorOptions options) {
  for (int64_t s : shape) LOOM_CHECK(s >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(loom::numel(shape)) * itemsize(options.dtype),
                                            options.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  Tensor t(std::move(impl));
  if (options.requires_grad) t.requires_grad_(true);
  return t;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = empty(shape(), TensorOptions(dtype_of<T>));
  kernels::backend(device()).copy(*this, host);
  const T* p = host.data<T>();
  return std::vector<T>(p, p + host.numel());
}

template <class T>
T Tensor::item() const {
  LOOM_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()), " has ", numel(), " elements, not 1");
  return to_vector<T>()[0];
}

#define LOOM_INSTANTIATE_ACCESS(T) \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
LOOM_INSTANTIATE_ACCESS(float)
LOOM_INSTANTIATE_ACCESS(double)
LOOM_INSTANTIATE_ACCESS(bf16)
LOOM_INSTANTIATE_ACCESS(f16)
LOOM_INSTANTIATE_ACCESS(int32_t)
LOOM_INSTANTIATE_ACCESS(int64_t)
LOOM_INSTANTIATE_ACCESS(uint8_t)
#undef LOOM_INSTANTIATE_ACCESS

// std::vector<bool> is bit-packed, so bool goes through uint8_t.
template <>
std::vector<bool> Tensor::to_vector<bool>() const {
  auto bytes = to(DType::boolean).to_vector<uint8_t>();
  return std::vector<bool>(bytes.begin(), bytes.end());
}
template <>
bool Tensor::item<bool>() const {
  return item<uint8_t>() != 0;
}

// ---- autograd state ----

bool Tensor::requires_grad() const { return get(impl_).requires_grad; }

Tensor& Tensor::requires_grad_(bool value) {
  LOOM_CHECK(is_leaf() || value, "requires_grad_(false) on a non-leaf tensor: use detach() instead");
  LOOM_CHECK(!value || is_floating(dtype()), "requires_grad_: only floating tensors can require gradients, got ",
             dtype_name(dtype()));
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return get(impl_).grad_fn == nullptr; }
Tensor Tensor::grad() const { return get(impl_).grad; }

void Tensor::set_grad(const Tensor& g) const {
  if (g.defined())
    LOOM_CHECK(g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()), " does not match tensor shape ",
               shape_str(shape()));
  impl_->grad = g;
}

void Tensor::zero_grad() const { impl_->grad = Tensor(); }
const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const { return get(impl_).grad_fn; }

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  autograd::backward({*this}, {grad}, retain_graph);
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

void Tensor::register_hook(GradHook hook) const {
  LOOM_CHECK(requires_grad(), "register_hook: the tensor does not require grad");
  if (is_leaf()) {
    impl_->hooks.push_back(std::move(hook));
  } else {
    impl_->grad_fn->output_slot(impl_->output_nr).hooks.push_back(std::move(hook));
  }
}

void Tensor::register_grad_ready_hook(ReadyHook hook) const {
  LOOM_CHECK(is_leaf() && requires_grad(), "register_grad_ready_hook: only leaf tensors that require grad have a .grad");
  impl_->ready_hooks.push_back(std::move(hook));
}

void Tensor::retain_grad() const {
  LOOM_CHECK(requires_grad(), "retain_grad: the tensor does not require grad");
  if (is_leaf()) return;
  impl_->retains_grad = true;
  impl_->grad_fn->output_slot(impl_->output_nr).retained = impl_;
}

// ---- views (thin wrappers over loom/ops/shape.hpp) ----

Tensor Tensor::view(const Shape& s) const { return loom::view(*this, s); }
Tensor Tensor::reshape(const Shape& s) const { return loom::reshape(*this, s); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const { return loom::permute(*this, dims); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return loom::transpose(*this, d0, d1); }
Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const { return loom::narrow(*this, d, start, length); }
Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  return loom::slice(*this, d, start, end, step);
}
Tensor Tensor::select(int64_t d, int64_t index) const { return loom::select(*this, d, index); }
Tensor Tensor::expand(const Shape& s) const { return loom::expand(*this, s); }
Tensor Tensor::unsqueeze(int64_t d) const { return loom::unsqueeze(*this, d); }
Tensor Tensor::squeeze(int64_t d) const { return loom::squeeze(*this, d); }
Tensor Tensor::flatten(int64_t start, int64_t end) const { return loom::flatten(*this, start, end); }
Tensor Tensor::contiguous() const { return loom::contiguous(*this); }
Tensor Tensor::clone() const { return loom::clone(*this); }
Tensor Tensor::to(DType t) const { return loom::to_dtype(*this, t); }

Tensor Tensor::to(Device device) const { return loom::to_device(*this, device); }

void Tensor::set_data(const Tensor& value) const {
  check_defined(*this, "set_data", "this");
  check_defined(value, "set_data", "value");
  LOOM_CHECK(is_leaf(), "set_data: only a leaf tensor's data can be replaced (this one is the output of an op)");
  impl_->storage = value.storage();
  impl_->shape = value.shape();
  impl_->strides = value.strides();
  impl_->offset = value.offset();
  impl_->dtype = value.dtype();
  impl_->storage->bump_version();
}

// ---- in-place ----

namespace {
void check_inplace(const Tensor& t, const char* op) {
  LOOM_CHECK(!(grad_enabled() && t.requires_grad()), op, ": in-place change of a tensor that requires grad (shape ",
             shape_str(t.shape()), "); run it under NoGradGuard or use the out-of-place op");
}
}  // namespace

Tensor& Tensor::fill_(double value) {
  check_inplace(*this, "fill_");
  kernels::backend(device()).fill(*this, value);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  check_defined(src, "copy_", "src");
  Tensor s = loom::expand(src.detach(), shape());
  kernels::backend(device()).copy(s, *this);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  NoGradGuard guard;
  Tensor sum = alpha == 1.0 ? loom::add(*this, other) : loom::add(*this, loom::mul(other, alpha));
  LOOM_CHECK(sum.shape() == shape(), "add_: broadcasting ", shape_str(other.shape()), " into ", shape_str(shape()),
             " would change the shape to ", shape_str(sum.shape()));
  kernels::backend(device()).copy(sum, *this);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::mul_(double value) {
  check_inplace(*this, "mul_");
  NoGradGuard guard;
  kernels::backend(device()).copy(loom::mul(*this, value), *this);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::masked_fill_(const Tensor& mask, double value) {
  check_inplace(*this, "masked_fill_");
  NoGradGuard guard;
  Tensor filled = loom::masked_fill(*this, mask, value);
  LOOM_CHECK(filled.shape() == shape(), "masked_fill_: mask ", shape_str(mask.shape()), " does not broadcast to ",
             shape_str(shape()));
  kernels::backend(device()).copy(filled, *this);
  storage()->bump_version();
  return *this;
}

}  // namespace loom
