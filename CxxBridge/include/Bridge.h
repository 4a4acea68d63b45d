#pragma once
#include <cstdint>
#include <cstddef>

namespace onednn_bridge {

enum class Status : int32_t { ok = 0, invalidArgument = 1, unimplemented = 2, outOfMemory = 3, failed = 4 };

struct Plan;

const char *lastErrorMessage() noexcept;
Status engineInfo(int64_t *version) noexcept;
Plan *planCreate(int64_t n, Status *status) noexcept;
int64_t planValue(const Plan *plan) noexcept;
void planDestroy(Plan *plan) noexcept;

}
