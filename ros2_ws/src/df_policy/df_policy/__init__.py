"""df_policy: ROS 2 glue for df-stack. Nodes decode messages, call the core
(`sim`, `policy`, `data_collection`) and encode messages; nothing numeric lives here
except message conversion (`df_policy.conversions`) and QoS/topic defaults (`df_policy.qos`)."""
