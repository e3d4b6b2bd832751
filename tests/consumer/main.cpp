// Smoke test for the installed loom package: builds against the exported
// loom::loom target only (no access to the source tree).
#include <loom/loom.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    loom::Tensor w = loom::randn({3, 2}).requires_grad_();
    loom::Tensor x = loom::ones({4, 3});
    loom::Tensor loss = loom::sum(loom::matmul(x, w));
    loss.backward();

    // d(sum(x @ w))/dw[i][j] = sum_k x[k][i] = 4 (x is 4x3 of ones).
    const std::vector<float> g = w.grad().to_vector<float>();
    if (g.size() != 6) {
        std::fprintf(stderr, "consumer: expected 6 gradient entries, got %zu\n", g.size());
        return 1;
    }
    for (std::size_t i = 0; i < g.size(); ++i) {
        if (std::fabs(g[i] - 4.0f) > 1e-5f) {
            std::fprintf(stderr, "consumer: grad[%zu] = %g, expected 4\n", i, static_cast<double>(g[i]));
            return 1;
        }
    }
    std::printf("consumer: ok\n");
    return 0;
}
