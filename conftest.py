"""Names every docstring example may use without importing them, and the costliest unit tests' tier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(jax=jax, jnp=jnp, np=np, nnx=nnx)


# The costliest unit tests, measured with `pytest --durations` on the 2-core CPU (each several seconds of
# compiling), run in the integration tier so that the fast tier stays under 8 minutes; none is dropped. Others
# of the same kind are marked in place with the comment "expensive: the integration tier runs it".
EXPENSIVE = {
    "tests/functional/test_properties.py::test_conv_properties_over_random_geometry",
    "tests/nn/test_stages.py::test_same_values_and_gradients_as_layer_by_layer[shape0-conv_kw0-pool_args0]",
    "tests/nn/test_stages.py::test_same_values_and_gradients_as_layer_by_layer[shape2-conv_kw2-pool_args2]",
    "tests/nn/test_stages.py::test_same_values_and_gradients_as_layer_by_layer[shape4-conv_kw4-pool_args4]",
    "tests/nn/test_init.py::test_truncated_normal_equals_jax_bit_for_bit[shape3]",
    "tests/nn/test_init.py::test_raw_uint32_keys_and_float64_equal_jax_too",
    "tests/functional/test_pool.py::test_max_avg_pool_match_torch[3-2-1-True-True-3]",
    "tests/functional/test_pool.py::test_max_avg_pool_match_torch[3-3-1-False-False-3]",
    "tests/functional/test_pool.py::test_tiled_max_pool_nan_window_passes_no_gradient_as_reduce_window",
    "tests/inspect/test_linear.py::test_fft_singular_values_equal_the_matrix_svd[size3-k3-1-2]",
    "tests/inspect/test_linear.py::test_fft_singular_values_equal_the_matrix_svd[size1-k1-3-2]",
    "tests/inspect/test_linear.py::test_fft_singular_values_equal_the_matrix_svd[size2-k2-2-2]",
    "tests/inspect/test_linear.py::test_matrix_times_vector_is_the_convolution[shape3-k3-kw3]",
    "tests/functional/test_conv_transpose.py::test_tiled_path_equals_the_general_form[xs0-ws0]",
    "tests/functional/test_conv_transpose.py::test_tiled_path_equals_the_general_form[xs2-ws2]",
    "tests/functional/test_norm.py::test_batch_norm_derivatives_equal_autodiff_of_the_formula[True]",
    "tests/functional/test_norm.py::test_batch_norm_under_vmap_with_axis_name_equals_full_batch",
    "tests/nn/test_modules.py::test_ensemble_by_vmap_keeps_batchnorm_state_per_member",
    "tests/viz/test_saliency.py::test_integrated_gradients_completeness",
    "tests/data/test_datasets.py::test_mnist1d_shuffled_is_mnist1d_with_one_fixed_permutation_of_positions",
    "tests/backends/cpu/test_onednn_batch_norm.py::test_values_statistics_gradients_and_jvps_equal_xla[plain-shape2]",
    "tests/backends/cpu/test_onednn_batch_norm.py::test_values_statistics_gradients_and_jvps_equal_xla[plain-shape3]",
    "cnnjax/equivariance/layerwise.py::cnnjax.equivariance.layerwise.layerwise_equivariance",
    "tests/train/test_step.py::test_bfloat16_step_keeps_float32_params_optimizer_state_and_statistics",
    "tests/models/test_shift_options.py::test_p4cnn_logits_are_invariant_under_the_group[p4m]",
    "tests/models/test_torch_port.py::test_resnet_outputs_match_torch_after_loading[True-layers2-4-8]",
    "tests/models/test_torch_port.py::test_resnet_outputs_match_torch_after_loading[False-layers0-1-64]",
    "tests/backends/cpu/test_fusion.py::test_fused_steps_equal_the_layers_written_one_by_one[resnet20-shape2-True]",
    "tests/backends/cpu/test_onednn.py::test_narrow_convs_take_im2col_input_gradient[7-5-False]",
    "tests/equivariance/test_assertions.py::test_invariant_helpers_and_custom_tolerances",
    "tests/train/test_sweep.py::test_run_sweep_checks_every_cell_before_training",
    "tests/models/test_zoo.py::test_large_models_output_shapes[efficientnet_v2_s-shape16-out16]",
    "tests/models/test_zoo.py::test_large_models_output_shapes[densenet121-shape4-out4]",
    "tests/data/test_augment.py::test_flip_rot90_color",
    "tests/train/test_metrics.py::test_jsonl_and_csv_hold_every_row_and_rewrite_replaces_them",
    "tests/nn/test_modules.py::test_train_and_eval_switch_batchnorm_and_dropout",
    "tests/nn/test_modules.py::test_pool_norm_upsample_modules_wrap_the_functional_ops",
    "tests/nn/test_stages.py::test_same_values_and_gradients_as_layer_by_layer[shape1-conv_kw1-pool_args1]",
    "tests/nn/test_init.py::test_inside_a_trace_and_in_half_precision_it_is_jax_s_initializer",
    "tests/functional/test_conv_transpose.py::test_conv_transpose_undoes_conv_shape",
    "tests/functional/test_conv_transpose.py::test_tiled_path_equals_the_general_form[xs1-ws1]",
    "tests/functional/test_norm.py::test_group_norm_extremes_are_layer_and_instance_norm",
    "tests/functional/test_norm.py::test_batch_norm_gradients_match_torch_and_finite_differences",
    "tests/functional/test_equivariance.py::test_circular_conv_commutes_with_roll",
    "tests/viz/test_saliency.py::test_vanilla_gradient_matches_finite_differences",
    "tests/data/test_datasets.py::test_shapes_labels_boxes_and_masks_agree",
    "tests/backends/cpu/test_onednn_batch_norm.py::test_values_statistics_gradients_and_jvps_equal_xla[plain-shape1]",
    "tests/backends/cpu/test_conv.py::test_im2col_jit_vmap_and_bfloat16",
    "tests/train/test_step.py::test_bfloat16_step_really_computes_in_bfloat16_and_tracks_float32",
    "tests/models/test_shift_options.py::test_z2cnn_matches_p4cnn_in_size_but_not_in_rotation_invariance",
    "tests/models/test_shift_options.py::test_digits_cnn_aps_circular_global_is_exactly_shift_invariant",
    "tests/models/test_zoo.py::test_param_count[efficientnet_v2_l]",
    "tests/detection/test_boxes.py::test_area_and_iou_match_loops",
    "tests/detection/test_nms.py::test_nms_matches_greedy_reference",
    "tests/detection/test_yolo.py::test_loss_matches_reference",
    "tests/segmentation/test_segmentation.py::test_dice_matches_formula_and_vanishes_when_perfect",
    # this round (stop 36): the next 32 costliest, by --durations on the fast tier at 492 s
    "tests/models/test_gcnn.py::test_logits_are_invariant_to_quarter_turns_and_nearly_to_the_other_rotations[C8]",
    "tests/models/test_torch_port.py::test_resnet_outputs_match_torch_after_loading[True-layers1-1-64]",
    "tests/detection/test_nms.py::test_nms_jit_vmap_and_truncation",
    "tests/models/test_shift_options.py::test_p4cnn_logits_are_invariant_under_the_group[p4]",
    "tests/functional/test_norm.py::test_batch_norm_derivatives_equal_autodiff_of_the_formula[False]",
    "tests/nn/test_spatial_transformer.py::test_output_size_and_gradients_reach_the_localization_net",
    "tests/equivariance/test_metrics.py::test_lie_derivative_agrees_with_a_finite_difference",
    "tests/backends/cpu/test_onednn.py::test_values_gradients_and_jvps_equal_xla[xs4-ws4-kw4]",
    "tests/backends/cpu/test_onednn_batch_norm.py::test_values_statistics_gradients_and_jvps_equal_xla[relu-shape3]",
    "tests/backends/cpu/test_onednn_batch_norm.py::test_values_statistics_gradients_and_jvps_equal_xla[relu-shape2]",
    "tests/inspect/test_receptive_field.py::test_analytic_equals_empirical_with_strides_dilations_and_pooling",
    "tests/functional/test_pool.py::test_max_avg_pool_match_torch[3-2-1-True-False-3]",
    "tests/nn/test_stages.py::test_mixed_precision_matches_layer_by_layer",
    "tests/models/test_weights.py::test_a_pth_file_loads_into_a_model_and_through_an_orbax_folder[None]",
    "tests/detection/test_yolo.py::test_decode_inverts_targets_and_detect_keeps_one_box_per_object",
    "tests/equivariance/test_continuous.py::test_invariance_error_of_a_c8_network_is_exact_at_quarter_turns",
    "tests/models/test_shift_options.py::test_nn_layers_wrap_the_functional_ops",
    "tests/functional/test_resample.py::test_gradients_match_torch[bicubic]",
    "tests/backends/cpu/test_onednn_batch_norm.py::test_values_statistics_gradients_and_jvps_equal_xla[relu-shape1]",
    "tests/nn/test_stages.py::test_same_values_and_gradients_as_layer_by_layer[shape3-conv_kw3-pool_args3]",
    "tests/functional/test_norm.py::test_group_and_instance_norm_match_torch",
    "tests/functional/test_pool.py::test_max_unpool_inverts_on_the_maxima_and_matches_torch",
    "tests/data/test_datasets.py::test_rotated_digit_images_turn_without_clipping",
    "tests/equivariance/test_metrics.py::test_strided_stacks_pass_multiples_of_the_stride_and_fail_one_pixel[1]",
    "tests/backends/cpu/test_onednn_batch_norm.py::test_values_statistics_gradients_and_jvps_equal_xla[plain-shape0]",
    "tests/equivariance/test_transforms.py::test_flip_rot90_and_group_actions_match_numpy",
    "tests/segmentation/test_segmentation.py::test_pixel_cross_entropy_matches_numpy",
    "tests/backends/cpu/test_onednn.py::test_vmap_equals_member_by_member[in_axes0-2]",
    "tests/backends/cpu/test_onednn.py::test_values_gradients_and_jvps_equal_xla[xs6-ws6-kw6]",
    "tests/test_bad_inputs_api.py::test_non_array_inputs_get_a_type_error_naming_the_function_and_argument[yolo_loss]",
    "tests/functional/test_pool.py::test_onednn_max_pool_equals_reduce_window_with_ties[shape4-window4-stride4-0-1-False]",
    "tests/test_bad_inputs_api.py::test_non_array_inputs_get_a_type_error_naming_the_function_and_argument[detect]",
    # the viz entries of the battery, each a saliency or feature-map program compiled anew
    *(f"tests/test_bad_inputs_api.py::test_non_array_inputs_get_a_type_error_naming_the_function_and_argument[{n}]"
      for n in ("grad_cam", "smoothgrad", "integrated_gradients", "vanilla_gradient", "saliency", "feature_maps",
                "plot_feature_maps", "batched_nms", "decode_yolo")),
    "tests/viz/test_maximize.py::test_a_linear_unit_is_maximised_by_its_weights[fourier]",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in EXPENSIVE:
            item.add_marker(pytest.mark.integration)
