#!/bin/sh
# Prepare this process's Bytewax recovery partition, then run the command.
#
# With BYTEWAX_RECOVERY_DIRECTORY set, every process of the cluster keeps its
# own volume. The cluster as a whole must see all FRAUDFLOW_RECOVERY_PARTITIONS
# partitions, so process i creates partition i, once, on its first start, and
# processes numbered at or above the partition count hold none. Rescaling up
# is therefore safe; rescaling below the partition count strands partitions
# (see docs/deployment.md, "Scaling").
#
# The process number comes from BYTEWAX_PROCESS_ID, or from the pod name and
# StatefulSet name the way bytewax.run derives it, or is 0.
set -eu

process_index() {
    if [ -n "${BYTEWAX_PROCESS_ID:-}" ]; then
        echo "${BYTEWAX_PROCESS_ID}"
    elif [ -n "${BYTEWAX_POD_NAME:-}" ] && [ -n "${BYTEWAX_STATEFULSET_NAME:-}" ]; then
        echo "${BYTEWAX_POD_NAME#"${BYTEWAX_STATEFULSET_NAME}"-}"
    else
        echo 0
    fi
}

prepare_recovery() {
    dir="$1"
    index="$2"
    count="$3"
    case "${index}" in
        '' | *[!0-9]*)
            echo "fraudflow-entrypoint: expected a numeric process index, got '${index}'" >&2
            exit 64
            ;;
    esac
    mkdir -p "${dir}"
    if [ "${index}" -ge "${count}" ]; then
        echo "fraudflow-entrypoint: process ${index} holds no recovery partition (${count} in all)"
        return
    fi
    if [ -e "${dir}/part-${index}.sqlite3" ]; then
        return
    fi
    scratch="$(mktemp -d "${dir}/.init.XXXXXX")"
    python -m bytewax.recovery "${scratch}" "${count}"
    mv "${scratch}/part-${index}.sqlite3" "${dir}/"
    rm -rf "${scratch}"
    echo "fraudflow-entrypoint: created recovery partition ${index} of ${count} in ${dir}"
}

if [ -n "${BYTEWAX_RECOVERY_DIRECTORY:-}" ]; then
    prepare_recovery "${BYTEWAX_RECOVERY_DIRECTORY}" "$(process_index)" \
        "${FRAUDFLOW_RECOVERY_PARTITIONS:-1}"
fi

exec "$@"
