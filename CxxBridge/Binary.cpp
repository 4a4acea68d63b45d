// Element-wise addition, dst = src + src1, with all three tensors in one layout.
#include "Common.hpp"

namespace onednn_bridge {

namespace {

struct AddPlan final : Plan {
    memory::desc data;

    explicit AddPlan(const memory::desc &data) : Plan("add " + dimsText(data.dims())), data(data) {}

    void build(Pass pass, PassTable &table) override {
        if (pass != Pass::forward) rejectPass(pass);
        dnnl::binary::desc desc(dnnl::algorithm::binary_add, data, data, data);
        dnnl::binary::primitive_desc primitiveDesc(desc, cpuEngine());
        table.primitive = dnnl::binary(primitiveDesc);
        table.add(Role::src, DNNL_ARG_SRC_0, primitiveDesc.src_desc(0));
        table.add(Role::src1, DNNL_ARG_SRC_1, primitiveDesc.src_desc(1));
        table.add(Role::dst, DNNL_ARG_DST, primitiveDesc.dst_desc());
    }
};

}

Plan *addCreate(int32_t dataLayout, Status *status) noexcept {
    return createPlan("add", status, [&] { return new AddPlan(requireLayout(dataLayout, "add")); });
}

}
