package device

import (
	"fmt"
	"sort"
)

// AscendModel describes one Ascend card model and the vNPU templates its
// driver can carve out of it. A fractional request is rounded up to the
// smallest template that holds it.
type AscendModel struct {
	// Name is the resource suffix, as in huawei.com/<Name>.
	Name      string           `json:"name"`
	MemoryMiB int64            `json:"memoryMiB"`
	AICore    int              `json:"aiCore"`
	Templates []AscendTemplate `json:"templates,omitempty"`
}

// AscendTemplate is one vNPU shape.
type AscendTemplate struct {
	Name      string `json:"name"`
	MemoryMiB int64  `json:"memoryMiB"`
	AICore    int    `json:"aiCore"`
}

// DefaultAscendModels are the built-in models, from the shapes the Ascend
// driver offers (npu-smi's vNPU templates). Plugin args can replace them.
func DefaultAscendModels() []AscendModel {
	return []AscendModel{
		{Name: "Ascend910A", MemoryMiB: 32768, AICore: 30, Templates: []AscendTemplate{
			{"vir02", 2184, 2}, {"vir04", 4369, 4}, {"vir08", 8738, 8}, {"vir16", 17476, 16}}},
		{Name: "Ascend910B", MemoryMiB: 65536, AICore: 20, Templates: []AscendTemplate{
			{"vir05_1c_16g", 16384, 5}, {"vir10_3c_32g", 32768, 10}}},
		{Name: "Ascend910B3", MemoryMiB: 65536, AICore: 20, Templates: []AscendTemplate{
			{"vir05_1c_16g", 16384, 5}, {"vir10_3c_32g", 32768, 10}}},
		{Name: "Ascend910B4", MemoryMiB: 32768, AICore: 20, Templates: []AscendTemplate{
			{"vir05_1c_8g", 8192, 5}, {"vir10_3c_16g", 16384, 10}}},
		{Name: "Ascend310P", MemoryMiB: 21527, AICore: 8, Templates: []AscendTemplate{
			{"vir01", 3072, 1}, {"vir02", 6144, 2}, {"vir04", 12288, 4}}},
	}
}

// ValidateAscendModels checks a model list, naming the field at fault.
func ValidateAscendModels(path string, models []AscendModel) error {
	seen := map[string]bool{}
	for i, m := range models {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case m.Name == "":
			return fmt.Errorf("%s.name: must not be empty", p)
		case seen[m.Name]:
			return fmt.Errorf("%s.name: %q is listed twice", p, m.Name)
		case m.MemoryMiB <= 0 || m.MemoryMiB > maxMemoryMiB:
			return fmt.Errorf("%s.memoryMiB: %d must be in 1..%d", p, m.MemoryMiB, maxMemoryMiB)
		case m.AICore <= 0:
			return fmt.Errorf("%s.aiCore: %d must be > 0", p, m.AICore)
		}
		seen[m.Name] = true
		for j, t := range m.Templates {
			tp := fmt.Sprintf("%s.templates[%d]", p, j)
			switch {
			case t.Name == "":
				return fmt.Errorf("%s.name: must not be empty", tp)
			case t.MemoryMiB <= 0 || t.MemoryMiB > m.MemoryMiB:
				return fmt.Errorf("%s.memoryMiB: %d must be in 1..%d (the card's memory)", tp, t.MemoryMiB, m.MemoryMiB)
			case t.AICore <= 0 || t.AICore > m.AICore:
				return fmt.Errorf("%s.aiCore: %d must be in 1..%d (the card's AI cores)", tp, t.AICore, m.AICore)
			}
		}
	}
	return nil
}

// fit returns the smallest template holding memMiB, or false when only a
// whole card does.
func (m *AscendModel) fit(memMiB int64) (AscendTemplate, bool) {
	ts := append([]AscendTemplate(nil), m.Templates...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].MemoryMiB < ts[j].MemoryMiB })
	for _, t := range ts {
		if t.MemoryMiB >= memMiB {
			return t, true
		}
	}
	return AscendTemplate{}, false
}
