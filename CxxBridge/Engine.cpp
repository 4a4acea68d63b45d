// The CPU engine and stream, version and ISA queries, OpenMP threads, error messages, and the
// generic plan functions every primitive family shares.
#include "Common.hpp"

#include <dlfcn.h>
#include <unordered_map>
#include <vector>

namespace onednn_bridge {

static thread_local std::string lastMessage;

const char *lastErrorMessage() noexcept { return lastMessage.c_str(); }

static const char *statusName(dnnl_status_t status) {
    switch (status) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out_of_memory";
    case dnnl_invalid_arguments: return "invalid_arguments";
    case dnnl_unimplemented: return "unimplemented";
    case dnnl_iterator_ends: return "iterator_ends";
    case dnnl_runtime_error: return "runtime_error";
    case dnnl_not_required: return "not_required";
    }
    return "unknown status";
}

Status fail(const std::string &operation, const dnnl::error &error) {
    lastMessage = operation + ": oneDNN status " + statusName(error.status) + ": " + error.what();
    switch (error.status) {
    case dnnl_out_of_memory: return Status::outOfMemory;
    case dnnl_invalid_arguments: return Status::invalidArgument;
    case dnnl_unimplemented: return Status::unimplemented;
    default: return Status::failed;
    }
}

Status fail(const std::string &operation, const std::invalid_argument &error) {
    lastMessage = operation + ": " + error.what();
    return Status::invalidArgument;
}

Status fail(const std::string &operation, const std::exception &error) {
    lastMessage = operation + ": " + error.what();
    return Status::failed;
}

std::string dimsText(const memory::dims &dims) {
    std::string text;
    for (size_t i = 0; i < dims.size(); ++i) {
        if (i > 0) text += "x";
        text += std::to_string(dims[i]);
    }
    return text;
}

const char *roleName(Role role) {
    switch (role) {
    case Role::src: return "src";
    case Role::src1: return "src1";
    case Role::weights: return "weights";
    case Role::bias: return "bias";
    case Role::dst: return "dst";
    case Role::diffSrc: return "diff_src";
    case Role::diffWeights: return "diff_weights";
    case Role::diffBias: return "diff_bias";
    case Role::diffDst: return "diff_dst";
    case Role::mean: return "mean";
    case Role::variance: return "variance";
    case Role::scale: return "scale";
    case Role::shift: return "shift";
    case Role::diffScale: return "diff_scale";
    case Role::diffShift: return "diff_shift";
    case Role::workspace: return "workspace";
    }
    return "unknown role";
}

const char *passName(Pass pass) {
    switch (pass) {
    case Pass::forward: return "forward";
    case Pass::backward: return "backward";
    case Pass::backwardWeights: return "backward weights";
    }
    return "unknown pass";
}

// MARK: - Engine

dnnl::engine &cpuEngine() {
    static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    return engine;
}

dnnl::stream &cpuStream() {
    static dnnl::stream stream(cpuEngine());
    return stream;
}

Status engineInitialize() noexcept {
    try {
        cpuStream();
        return Status::ok;
    } catch (const dnnl::error &error) {
        return fail("engine creation", error);
    } catch (const std::exception &error) {
        return fail("engine creation", error);
    }
}

int32_t versionMajor() noexcept { return static_cast<int32_t>(dnnl::version()->major); }
int32_t versionMinor() noexcept { return static_cast<int32_t>(dnnl::version()->minor); }
int32_t versionPatch() noexcept { return static_cast<int32_t>(dnnl::version()->patch); }

const char *effectiveIsaName() noexcept {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_all: return "all";
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "unknown";
    }
}

// libdnnl links libgomp, so OpenMP's functions are already in the process; looking them up
// keeps the bridge from linking an OpenMP runtime of its own.
int32_t threadCount() noexcept {
    using Getter = int (*)();
    auto getter = reinterpret_cast<Getter>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    return getter ? getter() : 0;
}

Status setThreadCount(int32_t count) noexcept {
    using Setter = void (*)(int);
    auto setter = reinterpret_cast<Setter>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    if (!setter) {
        lastMessage = "set thread count: omp_set_num_threads not found; is libdnnl built with OpenMP?";
        return Status::failed;
    }
    if (count < 1) {
        lastMessage = "set thread count: count must be at least 1, got " + std::to_string(count);
        return Status::invalidArgument;
    }
    setter(count);
    return Status::ok;
}

// MARK: - Plans

int32_t planLayout(Plan *plan, Pass pass, Role role, Status *status) noexcept {
    std::string operation = "plan layout";
    try {
        operation = plan->description + " " + passName(pass);
        PassTable &table = plan->ensure(pass);
        auto slot = table.slots.find(role);
        if (slot == table.slots.end()) {
            throw std::invalid_argument(std::string("the pass has no ") + roleName(role) + " argument");
        }
        *status = Status::ok;
        return slot->second.layout;
    } catch (const dnnl::error &error) {
        *status = fail(operation, error);
    } catch (const std::invalid_argument &error) {
        *status = fail(operation, error);
    } catch (const std::exception &error) {
        *status = fail(operation, error);
    }
    return -1;
}

Status planExecute(Plan *plan, Pass pass, const Argument *arguments, int32_t count) noexcept {
    std::string operation = "plan execution";
    try {
        operation = plan->description + " " + passName(pass);
        PassTable &table = plan->ensure(pass);
        std::unordered_map<int, memory> memories;
        for (int32_t i = 0; i < count; ++i) {
            auto slot = table.slots.find(arguments[i].role);
            if (slot == table.slots.end()) {
                throw std::invalid_argument(std::string("the pass has no ") + roleName(arguments[i].role) + " argument");
            }
            if (arguments[i].data == nullptr) {
                throw std::invalid_argument(std::string("missing buffer for ") + roleName(arguments[i].role));
            }
            memories[slot->second.argument] = memory(slot->second.desc, cpuEngine(), arguments[i].data);
        }
        for (const auto &[argument, ownMemory] : table.ownArguments) {
            memories[argument] = ownMemory;
        }
        for (const auto &[role, slot] : table.slots) {
            if (memories.count(slot.argument) == 0) {
                throw std::invalid_argument(std::string("missing buffer for ") + roleName(role));
            }
        }
        if (table.run) {
            table.run(memories);
        } else {
            table.primitive.execute(cpuStream(), memories);
            cpuStream().wait();
        }
        return Status::ok;
    } catch (const dnnl::error &error) {
        return fail(operation, error);
    } catch (const std::invalid_argument &error) {
        return fail(operation, error);
    } catch (const std::exception &error) {
        return fail(operation, error);
    }
}

void planDestroy(Plan *plan) noexcept { delete plan; }

}
