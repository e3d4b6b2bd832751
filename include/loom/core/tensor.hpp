// loom::Tensor: a strided view of ref-counted storage, plus its autograd state.
//
// A Tensor is a cheap handle (one shared pointer). Copying a Tensor aliases it,
// as in PyTorch; `clone()` copies the data. Views (reshape, permute, narrow,
// expand, ...) share storage and the storage's version counter.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "loom/core/device.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/core/storage.hpp"

namespace loom {

namespace autograd {
class Node;
}

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = kCPU;
  bool requires_grad = false;

  TensorOptions() = default;
  TensorOptions(DType t) : dtype(t) {}  // NOLINT(google-explicit-constructor)
  TensorOptions& with_dtype(DType t) { dtype = t; return *this; }
  TensorOptions& with_device(Device d) { device = d; return *this; }
  TensorOptions& with_requires_grad(bool r = true) { requires_grad = r; return *this; }
};

struct TensorImpl;

class Tensor {
 public:
  // A hook sees the gradient with respect to this tensor when it is computed;
  // it may return a replacement gradient.
  using GradHook = std::function<std::optional<Tensor>(const Tensor& grad)>;
  // A ready hook runs after a leaf's .grad has been updated (data parallel
  // hangs its gradient all-reduce here).
  using ReadyHook = std::function<void(Tensor& leaf)>;

  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // --- metadata ---
  const Shape& shape() const;
  const Strides& strides() const;
  int64_t offset() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const;
  uint64_t version() const;  // the storage's in-place version counter

  // --- data access (CPU) ---
  void* raw_data() const;  // pointer to element 0 of this view
  template <class T> T* data() const {
    LOOM_CHECK(dtype() == dtype_of<T>, "data<", dtype_name(dtype_of<T>), ">(): tensor has dtype ", dtype_name(dtype()));
    LOOM_CHECK(device().is_cpu(), "data<", dtype_name(dtype_of<T>), ">(): the tensor is on ", device().str(),
               "; read it on the host after .to(kCPU) or with to_vector()");
    return static_cast<T*>(raw_data());
  }
  template <class T> T item() const;           // single-element tensor as T
  template <class T> std::vector<T> to_vector() const;  // all elements, row-major

  // --- autograd ---
  bool requires_grad() const;
  Tensor& requires_grad_(bool value = true);
  bool is_leaf() const;
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops .grad
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same storage, no history
  void register_hook(GradHook hook) const;
  void register_grad_ready_hook(ReadyHook hook) const;  // leaves only
  void retain_grad() const;  // keep .grad on a non-leaf

  // --- views and shape (free-function forms in loom/ops/shape.hpp) ---
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  // A copy on `device` (this tensor when it is there); differentiable. See
  // loom/core/cuda.hpp.
  Tensor to(Device device) const;
  // Points this leaf at value's memory, shape and dtype, keeping its identity
  // and autograd state (as PyTorch's `t.data = value`): modules and optimizers
  // holding this handle see the new data. Module::to moves parameters with it.
  void set_data(const Tensor& value) const;

  // --- in-place (bump the version counter; refused on tensors that need grad
  // while grad mode is on) ---
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double value);
  Tensor& masked_fill_(const Tensor& mask, double value);

  std::string str() const;  // the printed form

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;

  // autograd state
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;            // set on non-leaves
  uint32_t output_nr = 0;                              // which of grad_fn's outputs this is
  std::weak_ptr<autograd::Node> grad_accumulator;      // lazily made for leaves
  std::vector<Tensor::GradHook> hooks;                 // leaves: run before accumulation
  std::vector<Tensor::ReadyHook> ready_hooks;          // leaves: run after accumulation
  bool retains_grad = false;
  bool is_parameter = false;  // registered by a module (trainable or frozen)
};

// Wraps existing storage in a new tensor view.
Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset);
// A fresh, uninitialised, contiguous tensor.
Tensor empty(const Shape& shape, TensorOptions options = {});

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Throws naming `op` unless t is defined.
void check_defined(const Tensor& t, const char* op, const char* arg);

}  // namespace loom
