/* A stand-in for the Ascend driver's libdcmi.so: two cards (ids 3 and 5)
 * of one chip each, with the values ascend_test.go expects. Built by the
 * test with gcc -shared; the layouts are those of dcmi_interface_api.h.
 * -DSTUB_WITHOUT_HEALTH leaves out a function the backend requires,
 * -DSTUB_WITHOUT_TOPO the optional topology query;
 * MOSAIC_DCMI_STUB_INIT_FAIL=1 in the environment makes dcmi_init fail. */
#include <stdlib.h>
#include <string.h>

struct dcmi_chip_info {
	unsigned char chip_type[32];
	unsigned char chip_name[32];
	unsigned char chip_ver[32];
	unsigned int aicore_cnt;
};
struct dcmi_hbm_info {
	unsigned long long memory_size;
	unsigned int freq;
	unsigned long long memory_usage;
	int temp;
	unsigned int bandwith_util_rate;
};
struct dcmi_get_memory_info_stru {
	unsigned long long memory_size;
	unsigned long long memory_available;
	unsigned int freq;
	unsigned long hugepagesize;
	unsigned long hugepages_total;
	unsigned long hugepages_free;
	unsigned int utiliza;
	unsigned char reserve[60];
};
struct dcmi_pcie_info_all {
	unsigned int venderid;
	unsigned int subvenderid;
	unsigned int deviceid;
	unsigned int subdeviceid;
	int domain;
	unsigned int bdf_busid;
	unsigned int bdf_deviceid;
	unsigned int bdf_funcid;
	unsigned char reserve[32];
};
struct dcmi_die_id {
	unsigned int soc_die[5];
};

#define DCMI_ERR_INVALID_DEVICE_ID (-8007)
#define DCMI_ERR_NOT_SUPPORT (-8255)

/* Card 3: a healthy 910B3 with HBM and a die id. Card 5: a 310P3 with a
 * major alarm, DDR memory only (no HBM) and no die id. */
struct stub_card {
	int id, logic_id;
	const char *type, *name;
	unsigned int aicore;
	unsigned long long hbm_mib, ddr_mib;
	unsigned int health;
	unsigned int bus;
	unsigned int die[5];
};
static const struct stub_card cards[] = {
	{3, 1, "Ascend", "910B3", 20, 65536, 0, 0, 0xc1, {0x1a2b3c4d, 0x11, 0x22, 0x33, 0x44}},
	{5, 0, "Ascend", "310P3", 8, 0, 21527, 2, 0x01, {0, 0, 0, 0, 0}},
};
#define NCARDS ((int)(sizeof cards / sizeof cards[0]))

static const struct stub_card *find(int card_id, int device_id) {
	if (device_id != 0)
		return NULL;
	for (int i = 0; i < NCARDS; i++)
		if (cards[i].id == card_id)
			return &cards[i];
	return NULL;
}

int dcmi_init(void) {
	const char *fail = getenv("MOSAIC_DCMI_STUB_INIT_FAIL");
	return fail != NULL && fail[0] == '1' ? -8008 : 0;
}

int dcmi_get_card_num_list(int *card_num, int *card_list, int list_len) {
	int n = 0;
	for (int i = 0; i < NCARDS && n < list_len; i++)
		card_list[n++] = cards[i].id;
	*card_num = n;
	return 0;
}

int dcmi_get_device_num_in_card(int card_id, int *device_num) {
	if (find(card_id, 0) == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	*device_num = 1;
	return 0;
}

int dcmi_get_device_logic_id(int *device_logic_id, int card_id, int device_id) {
	const struct stub_card *c = find(card_id, device_id);
	if (c == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	*device_logic_id = c->logic_id;
	return 0;
}

int dcmi_get_device_chip_info(int card_id, int device_id, struct dcmi_chip_info *chip_info) {
	const struct stub_card *c = find(card_id, device_id);
	if (c == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	memset(chip_info, 0, sizeof *chip_info);
	strcpy((char *)chip_info->chip_type, c->type);
	strcpy((char *)chip_info->chip_name, c->name);
	strcpy((char *)chip_info->chip_ver, "V1");
	chip_info->aicore_cnt = c->aicore;
	return 0;
}

#ifndef STUB_WITHOUT_HEALTH
int dcmi_get_device_health(int card_id, int device_id, unsigned int *health) {
	const struct stub_card *c = find(card_id, device_id);
	if (c == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	*health = c->health;
	return 0;
}
#endif

int dcmi_get_device_hbm_info(int card_id, int device_id, struct dcmi_hbm_info *hbm_info) {
	const struct stub_card *c = find(card_id, device_id);
	if (c == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	memset(hbm_info, 0, sizeof *hbm_info);
	hbm_info->memory_size = c->hbm_mib;
	return 0;
}

int dcmi_get_device_memory_info_v3(int card_id, int device_id, struct dcmi_get_memory_info_stru *memory_info) {
	const struct stub_card *c = find(card_id, device_id);
	if (c == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	memset(memory_info, 0, sizeof *memory_info);
	memory_info->memory_size = c->ddr_mib;
	memory_info->hugepagesize = 2048;
	return 0;
}

int dcmi_get_device_pcie_info_v2(int card_id, int device_id, struct dcmi_pcie_info_all *pcie_info) {
	const struct stub_card *c = find(card_id, device_id);
	if (c == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	memset(pcie_info, 0, sizeof *pcie_info);
	pcie_info->venderid = 0x19e5;
	pcie_info->bdf_busid = c->bus;
	return 0;
}

int dcmi_get_device_die_v2(int card_id, int device_id, int input_type, struct dcmi_die_id *die_id) {
	const struct stub_card *c = find(card_id, device_id);
	if (c == NULL || input_type != 1 /* VDIE */)
		return DCMI_ERR_INVALID_DEVICE_ID;
	if (c->die[0] == 0)
		return DCMI_ERR_NOT_SUPPORT;
	memcpy(die_id->soc_die, c->die, sizeof c->die);
	return 0;
}

#ifndef STUB_WITHOUT_TOPO
/* The two chips are joined by HCCS (DCMI_TOPO_TYPE_HCCS). */
int dcmi_get_topo_info_by_device_id(int card_id1, int device_id1, int card_id2, int device_id2, int *topo_type) {
	const struct stub_card *a = find(card_id1, device_id1), *b = find(card_id2, device_id2);
	if (a == NULL || b == NULL)
		return DCMI_ERR_INVALID_DEVICE_ID;
	*topo_type = a == b ? 0 /* SELF */ : 3 /* HCCS */;
	return 0;
}
#endif
