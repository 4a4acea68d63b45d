// Internal to the bridge: the plan base class, the engine, the layout table and error helpers.
// Swift does not import this header, so it may use oneDNN and the standard library freely.
#pragma once
#include "Bridge.h"
#include "oneapi/dnnl/dnnl.hpp"

#include <functional>
#include <map>
#include <unordered_map>
#include <stdexcept>
#include <string>

namespace onednn_bridge {

using dnnl::memory;

dnnl::engine &cpuEngine();
dnnl::stream &cpuStream();

int32_t internLayout(const memory::desc &desc);
/// Returns the descriptor of a layout id, or nullptr for an unknown id.
const memory::desc *layoutDescriptor(int32_t layout);
/// Dense row-major f32.
memory::desc plainDescriptor(const memory::dims &dims);
/// Throws std::invalid_argument for an unknown id.
memory::desc requireLayout(int32_t layout, const std::string &operation);

std::string dimsText(const memory::dims &dims);
const char *roleName(Role role);
const char *passName(Pass pass);

/// Stores the message for `lastErrorMessage()` and returns the matching status.
Status fail(const std::string &operation, const dnnl::error &error);
Status fail(const std::string &operation, const std::invalid_argument &error);
Status fail(const std::string &operation, const std::exception &error);

/// The primitive of one pass and the tensors it reads and writes.
struct PassTable {
    struct Slot {
        int argument;
        memory::desc desc;
        int32_t layout;
    };

    bool built = false;
    dnnl::primitive primitive;
    std::map<Role, Slot> slots;
    /// Arguments the plan supplies itself on every execution, keyed by oneDNN argument.
    std::map<int, memory> ownArguments;
    /// When set, runs the pass in place of `primitive`, for work no oneDNN primitive does fast.
    std::function<void(std::unordered_map<int, memory> &)> run;

    void add(Role role, int argument, const memory::desc &desc) {
        slots[role] = Slot{argument, desc, internLayout(desc)};
    }
};

}

/// One operation at one shape. Subclasses build each pass on demand, so an inference-only
/// plan never creates backward primitives.
struct onednn_bridge::Plan {
    std::string description;
    PassTable passes[3];

    explicit Plan(std::string description) : description(std::move(description)) {}
    virtual ~Plan() = default;

    PassTable &ensure(Pass pass) {
        PassTable &table = passes[static_cast<int>(pass)];
        if (!table.built) {
            build(pass, table);
            table.built = true;
        }
        return table;
    }

protected:
    /// Creates the primitive of `pass` and fills the table's slots; throws dnnl::error, or
    /// std::invalid_argument for a pass the operation does not have.
    virtual void build(Pass pass, PassTable &table) = 0;

    [[noreturn]] void rejectPass(Pass pass) const {
        throw std::invalid_argument(std::string("this operation has no ") + passName(pass) + " pass");
    }
};

namespace onednn_bridge {

/// Builds a plan and its forward pass, converting exceptions into a status and a message.
template <typename Make>
Plan *createPlan(const char *operation, Status *status, Make make) noexcept {
    Plan *plan = nullptr;
    std::string name;
    try {
        name = operation;
        plan = make();
        name = plan->description + " forward";
        plan->ensure(Pass::forward);
        *status = Status::ok;
        return plan;
    } catch (const dnnl::error &error) {
        *status = fail(name, error);
    } catch (const std::invalid_argument &error) {
        *status = fail(name, error);
    } catch (const std::exception &error) {
        *status = fail(name, error);
    }
    delete plan;
    return nullptr;
}

}
