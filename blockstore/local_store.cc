// PLACEHOLDER: being written by its owner.
#include "blockstore/block_store.h"
