#include "Bridge.h"
#include "oneapi/dnnl/dnnl.hpp"
#include <string>

namespace onednn_bridge {
struct Plan { int64_t n; };
static thread_local std::string message;
const char *lastErrorMessage() noexcept { return message.c_str(); }
Status engineInfo(int64_t *version) noexcept {
    try {
        auto v = dnnl::version();
        *version = v->major * 10000 + v->minor * 100 + v->patch;
        dnnl::engine e(dnnl::engine::kind::cpu, 0);
        return Status::ok;
    } catch (const dnnl::error &e) { message = e.what(); return Status::failed; }
}
Plan *planCreate(int64_t n, Status *status) noexcept { *status = Status::ok; return new Plan{n}; }
int64_t planValue(const Plan *plan) noexcept { return plan->n; }
void planDestroy(Plan *plan) noexcept { delete plan; }
}
