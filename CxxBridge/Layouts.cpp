// The table of memory layouts Swift refers to by id, and reorders between them.
#include "Common.hpp"

#include <mutex>
#include <unordered_map>
#include <vector>

namespace onednn_bridge {

// Layouts are interned: equal descriptors share one id for the life of the process, so Swift
// can compare layouts by id. Interning scans the table, which stays small because a network
// needs only a few layouts per distinct tensor shape.
static std::mutex tableLock;
static std::vector<memory::desc> layoutTable;
static std::map<std::pair<int32_t, int32_t>, dnnl::reorder> reorderCache;

int32_t internLayout(const memory::desc &desc) {
    std::lock_guard<std::mutex> guard(tableLock);
    for (size_t i = 0; i < layoutTable.size(); ++i) {
        if (layoutTable[i] == desc) return static_cast<int32_t>(i);
    }
    layoutTable.push_back(desc);
    return static_cast<int32_t>(layoutTable.size() - 1);
}

const memory::desc *layoutDescriptor(int32_t layout) {
    std::lock_guard<std::mutex> guard(tableLock);
    if (layout < 0 || static_cast<size_t>(layout) >= layoutTable.size()) return nullptr;
    return &layoutTable[static_cast<size_t>(layout)];
}

memory::desc requireLayout(int32_t layout, const std::string &operation) {
    const memory::desc *desc = layoutDescriptor(layout);
    if (!desc) throw std::invalid_argument(operation + ": unknown layout id " + std::to_string(layout));
    return *desc;
}

memory::desc plainDescriptor(const memory::dims &dims) {
    memory::dims strides(dims.size(), 1);
    for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
    return memory::desc(dims, memory::data_type::f32, strides);
}

int32_t layoutPlain(const int64_t *dims, int32_t rank, Status *status) noexcept {
    std::string operation = "plain layout";
    try {
        memory::dims shape(dims, dims + (rank > 0 ? rank : 0));
        operation = "plain layout of " + dimsText(shape);
        if (rank < 1 || rank > DNNL_MAX_NDIMS) {
            throw std::invalid_argument("rank must be 1 to " + std::to_string(DNNL_MAX_NDIMS));
        }
        int32_t layout = internLayout(plainDescriptor(shape));
        *status = Status::ok;
        return layout;
    } catch (const dnnl::error &error) {
        *status = fail(operation, error);
    } catch (const std::invalid_argument &error) {
        *status = fail(operation, error);
    } catch (const std::exception &error) {
        *status = fail(operation, error);
    }
    return -1;
}

int64_t layoutByteCount(int32_t layout) noexcept {
    const memory::desc *desc = layoutDescriptor(layout);
    return desc ? static_cast<int64_t>(desc->get_size()) : 0;
}

bool layoutIsPlain(int32_t layout) noexcept {
    const memory::desc *desc = layoutDescriptor(layout);
    if (!desc) return false;
    try {
        return *desc == plainDescriptor(desc->dims());
    } catch (...) {
        return false;
    }
}

Status reorder(int32_t sourceLayout, const void *source, int32_t destinationLayout, void *destination) noexcept {
    std::string operation = "reorder";
    try {
        operation = "reorder from layout " + std::to_string(sourceLayout) + " to layout " +
                    std::to_string(destinationLayout);
        memory::desc from = requireLayout(sourceLayout, operation);
        memory::desc to = requireLayout(destinationLayout, operation);
        operation = "reorder " + dimsText(from.dims()) + " to " + dimsText(to.dims());

        dnnl::reorder primitive;
        {
            std::lock_guard<std::mutex> guard(tableLock);
            auto cached = reorderCache.find({sourceLayout, destinationLayout});
            if (cached != reorderCache.end()) primitive = cached->second;
        }
        if (!primitive) {
            dnnl::reorder::primitive_desc desc(cpuEngine(), from, cpuEngine(), to);
            primitive = dnnl::reorder(desc);
            std::lock_guard<std::mutex> guard(tableLock);
            reorderCache[{sourceLayout, destinationLayout}] = primitive;
        }

        memory sourceMemory(from, cpuEngine(), const_cast<void *>(source));
        memory destinationMemory(to, cpuEngine(), destination);
        primitive.execute(cpuStream(), sourceMemory, destinationMemory);
        cpuStream().wait();
        return Status::ok;
    } catch (const dnnl::error &error) {
        return fail(operation, error);
    } catch (const std::invalid_argument &error) {
        return fail(operation, error);
    } catch (const std::exception &error) {
        return fail(operation, error);
    }
}

}
